"use strict";
document.getElementById("state").textContent = "The console is not built yet.";
