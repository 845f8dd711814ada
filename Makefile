# The two commands of the README, and a few more. Everything real is in
# meson; this wrapper installs what is missing first.
BUILD	?= build
PYTHON	?= /usr/bin/python3
# make fuzz: seconds per libFuzzer target, and its clang build.
FUZZ_SECONDS	?= 30
FUZZ_BUILD	?= build-fuzz

.PHONY: all build deps test-deps run test install bench bench-status \
	bench-load bench-rss fuzz clean

all: build

deps:
	@sh scripts/deps.sh

test-deps:
	@sh scripts/deps.sh test

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Foreground on 127.0.0.1:8700 with the built-in defaults, state in ./var.
run: build
	@mkdir -p var/workspace
	./$(BUILD)/connectord -d

# Every suite twice: against the normal build, then against one built with
# AddressSanitizer and UndefinedBehaviorSanitizer, where any report fails.
test: test-deps $(BUILD)/build.ninja $(BUILD)-asan/build.ninja
	ninja -C $(BUILD)
	ninja -C $(BUILD)-asan
	$(PYTHON) tests/run.py --build $(BUILD) --sanitized $(BUILD)-asan

$(BUILD)-asan/build.ninja:
	meson setup $(BUILD)-asan -Db_sanitize=address,undefined -Db_lundef=false

# Every libFuzzer target for FUZZ_SECONDS each, one after the other, on a
# copy of its committed corpus (new inputs stay in $(FUZZ_BUILD)), with a
# table of executions, coverage and crashes; fails on a crash.
fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	$(PYTHON) tests/fuzz/run_fuzz.py --build $(FUZZ_BUILD) \
	    --seconds $(FUZZ_SECONDS)

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true

install: build
	meson install -C $(BUILD) --destdir "$(DESTDIR)"

# The three benchmarks of the README, one after the other (never at once:
# they would measure each other); each also has its own target.
# bench-load and bench-rss run rclone flows: one at a time per machine.
bench: build
	@sh scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(BUILD)
	$(PYTHON) bench/load.py --build $(BUILD)
	$(PYTHON) bench/rss.py --build $(BUILD)

bench-status: build
	@sh scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(BUILD)

bench-load: build
	@sh scripts/deps.sh bench
	$(PYTHON) bench/load.py --build $(BUILD)

bench-rss: build
	@sh scripts/deps.sh bench
	$(PYTHON) bench/rss.py --build $(BUILD)

clean:
	rm -rf $(BUILD)
