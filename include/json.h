/*
 * JSON helpers over yajl: bounded parsing (size, depth, NUL bytes), a few
 * tree edits that keep key order (so that files we rewrite keep the order
 * a person or another tool gave them), and generation. Library code.
 */
#ifndef CD_JSON_H
#define CD_JSON_H

#include <stddef.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/*
 * Parse len bytes. Refuses more than max bytes, embedded NUL bytes and
 * nesting deeper than CD_JSON_DEPTH_MAX. NULL with a sentence in err.
 */
yajl_val json_parse(const char *buf, size_t len, size_t max, char *err,
    size_t errlen);
/* Free a tree, wiping every string first (it may hold a secret). */
void json_free_secret(yajl_val v);

yajl_val json_obj_get(yajl_val obj, const char *key);
/* The string member key, or NULL if absent or not a string. */
const char *json_obj_str(yajl_val obj, const char *key);
/* Replace or append member key, leaving one member of that name (yajl
 * keeps duplicates); takes ownership of v (even on error). */
int json_obj_set(yajl_val obj, const char *key, yajl_val v);
/* Remove every member named key. 1 if any was removed, 0 if absent. */
int json_obj_del(yajl_val obj, const char *key);

yajl_val json_new_obj(void);
yajl_val json_new_arr(void);
/* Append v to an array; takes ownership of v (even on error). */
int json_arr_push(yajl_val arr, yajl_val v);
yajl_val json_new_str(const char *s);
yajl_val json_new_int(long long i);
yajl_val json_new_bool(int b);
yajl_val json_new_null(void);
/* Deep copy. */
yajl_val json_copy(yajl_val v);

/* Emit v into g. 0 or -1. */
int json_gen_val(yajl_gen g, yajl_val v);
/* Serialise v; pretty = 2-space indent and trailing newline. malloc'd. */
char *json_dump(yajl_val v, int pretty, size_t *len);

/* Generator shorthands for building answers. */
void json_gen_str(yajl_gen g, const char *s);
void json_gen_kstr(yajl_gen g, const char *k, const char *v);
void json_gen_kbool(yajl_gen g, const char *k, int v);
void json_gen_kint(yajl_gen g, const char *k, long long v);
void json_gen_knull(yajl_gen g, const char *k);
/* Copy the generator's buffer out as a malloc'd NUL-terminated string. */
char *json_gen_take(yajl_gen g, size_t *len);

#endif
