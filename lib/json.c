/*
 * JSON helpers over yajl. yajl's tree keeps object members in document
 * order in two parallel arrays allocated with malloc(); the edits below
 * keep that layout so yajl_tree_free() can release what we built.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cd_limits.h"
#include "json.h"

#include <yajl/yajl_parse.h>

/* Depth of nesting outside strings; yajl's free recurses, so bound it.
 * yajl_tree_parse() turns comments on, so skip them as its lexer does:
 * a quote inside a comment must not hide the brackets that follow. */
static int
json_depth_ok(const char *buf, size_t len)
{
	int	 depth = 0, instr = 0, esc = 0, comment = 0;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (instr) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				instr = 0;
			continue;
		}
		if (comment == '/') {		/* "//" runs to a newline */
			if (c == '\n')
				comment = 0;
			continue;
		}
		if (comment == '*') {		/* block comment */
			if (c == '*' && i + 1 < len && buf[i + 1] == '/') {
				comment = 0;
				i++;
			}
			continue;
		}
		if (c == '/' && i + 1 < len &&
		    (buf[i + 1] == '/' || buf[i + 1] == '*'))
			comment = buf[++i];
		else if (c == '"')
			instr = 1;
		else if (c == '{' || c == '[') {
			if (++depth > CD_JSON_DEPTH_MAX)
				return 0;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return 1;
}

/* yajl's tree parser accepts comments; JSON from a peer or a file must
 * be plain JSON, so validate it first with a strict streaming parse. */
static int
json_strict_ok(const char *buf, size_t len)
{
	yajl_handle	 h;
	yajl_status	 st;

	if ((h = yajl_alloc(NULL, NULL, NULL)) == NULL)
		return 0;
	yajl_config(h, yajl_allow_comments, 0);
	st = yajl_parse(h, (const unsigned char *)buf, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	return st == yajl_status_ok;
}

yajl_val
json_parse(const char *buf, size_t len, size_t max, char *err, size_t errlen)
{
	char		*copy, ebuf[256];
	yajl_val	 v;

	if (len > max) {
		snprintf(err, errlen, "the JSON is larger than %zu bytes", max);
		return NULL;
	}
	if (len == 0 || memchr(buf, '\0', len) != NULL) {
		snprintf(err, errlen, "%s", len == 0 ? "the body is empty" :
		    "the JSON holds a NUL byte");
		return NULL;
	}
	if (!json_depth_ok(buf, len)) {
		snprintf(err, errlen, "the JSON is nested deeper than %d levels",
		    CD_JSON_DEPTH_MAX);
		return NULL;
	}
	if (!json_strict_ok(buf, len)) {
		snprintf(err, errlen, "the body is not valid JSON");
		return NULL;
	}
	if ((copy = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(copy, buf, len);
	copy[len] = '\0';
	ebuf[0] = '\0';
	v = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
	explicit_bzero(copy, len);
	free(copy);
	if (v == NULL)
		snprintf(err, errlen, "the body is not valid JSON");
	return v;
}

static void
json_wipe(yajl_val v)
{
	if (v == NULL)
		return;
	switch (v->type) {
	case yajl_t_string:
		if (v->u.string)
			explicit_bzero(v->u.string, strlen(v->u.string));
		break;
	case yajl_t_object:
		for (size_t i = 0; i < v->u.object.len; i++)
			json_wipe(v->u.object.values[i]);
		break;
	case yajl_t_array:
		for (size_t i = 0; i < v->u.array.len; i++)
			json_wipe(v->u.array.values[i]);
		break;
	case yajl_t_number:
	case yajl_t_true:
	case yajl_t_false:
	case yajl_t_null:
	case yajl_t_any:
		break;
	}
}

void
json_free_secret(yajl_val v)
{
	json_wipe(v);
	yajl_tree_free(v);
}

yajl_val
json_obj_get(yajl_val obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return NULL;
	for (size_t i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

const char *
json_obj_str(yajl_val obj, const char *key)
{
	return YAJL_GET_STRING(json_obj_get(obj, key));
}

/* Append member key without looking for it; takes ownership of v. */
static int
json_obj_append(yajl_val obj, const char *key, yajl_val v)
{
	const char	**keys;
	yajl_val	 *vals;
	char		 *k;
	size_t		  n;

	if (!YAJL_IS_OBJECT(obj) || v == NULL)
		goto fail;
	n = obj->u.object.len;
	if ((k = strdup(key)) == NULL)
		goto fail;
	keys = realloc(obj->u.object.keys, (n + 1) * sizeof(*keys));
	if (keys == NULL) {
		free(k);
		goto fail;
	}
	obj->u.object.keys = keys;
	vals = realloc(obj->u.object.values, (n + 1) * sizeof(*vals));
	if (vals == NULL) {
		free(k);
		goto fail;
	}
	obj->u.object.values = vals;
	keys[n] = k;
	vals[n] = v;
	obj->u.object.len = n + 1;
	return 0;
fail:
	json_free_secret(v);
	return -1;
}

/* Remove the members named key from index i on; how many went. */
static int
json_obj_drop(yajl_val obj, const char *key, size_t i)
{
	int n = 0;

	while (i < obj->u.object.len) {
		size_t left = obj->u.object.len - i - 1;

		if (strcmp(obj->u.object.keys[i], key) != 0) {
			i++;
			continue;
		}
		free((char *)obj->u.object.keys[i]);
		json_free_secret(obj->u.object.values[i]);
		memmove(&obj->u.object.keys[i], &obj->u.object.keys[i + 1],
		    left * sizeof(*obj->u.object.keys));
		memmove(&obj->u.object.values[i], &obj->u.object.values[i + 1],
		    left * sizeof(*obj->u.object.values));
		obj->u.object.len--;
		n++;
	}
	return n;
}

/*
 * yajl keeps every member of a duplicated key and json_obj_get() finds
 * the first; set and delete therefore act on all of them, or a value
 * thought replaced or removed would come back (a deleted token in
 * mcp-tokens.json, for one).
 */
int
json_obj_set(yajl_val obj, const char *key, yajl_val v)
{
	if (YAJL_IS_OBJECT(obj) && v != NULL) {
		for (size_t i = 0; i < obj->u.object.len; i++) {
			if (strcmp(obj->u.object.keys[i], key) == 0) {
				json_free_secret(obj->u.object.values[i]);
				obj->u.object.values[i] = v;
				json_obj_drop(obj, key, i + 1);
				return 0;
			}
		}
	}
	return json_obj_append(obj, key, v);
}

int
json_obj_del(yajl_val obj, const char *key)
{
	if (!YAJL_IS_OBJECT(obj))
		return 0;
	return json_obj_drop(obj, key, 0) > 0;
}

static yajl_val
json_new(yajl_type t)
{
	yajl_val v;

	if ((v = calloc(1, sizeof(*v))) != NULL)
		v->type = t;
	return v;
}

yajl_val
json_new_obj(void)
{
	return json_new(yajl_t_object);
}

yajl_val
json_new_arr(void)
{
	return json_new(yajl_t_array);
}

int
json_arr_push(yajl_val arr, yajl_val v)
{
	yajl_val *vals;

	if (!YAJL_IS_ARRAY(arr) || v == NULL)
		goto fail;
	vals = realloc(arr->u.array.values, (arr->u.array.len + 1) *
	    sizeof(*vals));
	if (vals == NULL)
		goto fail;
	arr->u.array.values = vals;
	vals[arr->u.array.len++] = v;
	return 0;
fail:
	json_free_secret(v);
	return -1;
}

yajl_val
json_new_str(const char *s)
{
	yajl_val v;

	if ((v = json_new(yajl_t_string)) == NULL)
		return NULL;
	if ((v->u.string = strdup(s ? s : "")) == NULL) {
		free(v);
		return NULL;
	}
	return v;
}

yajl_val
json_new_int(long long i)
{
	yajl_val v;
	char	 buf[32];

	if ((v = json_new(yajl_t_number)) == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%lld", i);
	if ((v->u.number.r = strdup(buf)) == NULL) {
		free(v);
		return NULL;
	}
	v->u.number.i = i;
	v->u.number.d = (double)i;
	v->u.number.flags = YAJL_NUMBER_INT_VALID | YAJL_NUMBER_DOUBLE_VALID;
	return v;
}

yajl_val
json_new_bool(int b)
{
	return json_new(b ? yajl_t_true : yajl_t_false);
}

yajl_val
json_new_null(void)
{
	return json_new(yajl_t_null);
}

static yajl_val
json_copy_container(yajl_val v)
{
	yajl_val c;

	if ((c = json_new(v->type)) == NULL)
		return NULL;
	if (v->type == yajl_t_object) {
		/* Append, not set: yajl keeps duplicate keys, and a copy
		 * must keep them too or json_obj_get() would then find the
		 * last value where the original gives the first. */
		for (size_t i = 0; i < v->u.object.len; i++)
			if (json_obj_append(c, v->u.object.keys[i],
			    json_copy(v->u.object.values[i])) == -1)
				goto fail;
		return c;
	}
	if (v->u.array.len > 0) {
		c->u.array.values = calloc(v->u.array.len, sizeof(yajl_val));
		if (c->u.array.values == NULL)
			goto fail;
	}
	for (size_t i = 0; i < v->u.array.len; i++) {
		if ((c->u.array.values[i] = json_copy(v->u.array.values[i])) ==
		    NULL)
			goto fail;
		c->u.array.len = i + 1;
	}
	return c;
fail:
	json_free_secret(c);
	return NULL;
}

yajl_val
json_copy(yajl_val v)
{
	yajl_val c;

	if (v == NULL)
		return NULL;
	switch (v->type) {
	case yajl_t_string:
		return json_new_str(v->u.string);
	case yajl_t_number:
		if ((c = json_new(yajl_t_number)) == NULL)
			return NULL;
		c->u.number = v->u.number;
		if ((c->u.number.r = strdup(v->u.number.r)) == NULL) {
			free(c);
			return NULL;
		}
		return c;
	case yajl_t_object:
	case yajl_t_array:
		return json_copy_container(v);
	case yajl_t_true:
	case yajl_t_false:
	case yajl_t_null:
	case yajl_t_any:
		break;
	}
	return json_new(v->type);
}

int
json_gen_val(yajl_gen g, yajl_val v)
{
	yajl_gen_status s = yajl_gen_status_ok;

	switch (v->type) {
	case yajl_t_string:
		return json_gen_str(g, v->u.string), 0;
	case yajl_t_number:
		s = yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
		break;
	case yajl_t_object:
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len && s == 0; i++) {
			json_gen_str(g, v->u.object.keys[i]);
			s = json_gen_val(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
		break;
	case yajl_t_array:
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len && s == 0; i++)
			s = json_gen_val(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
		break;
	case yajl_t_true:
	case yajl_t_false:
		s = yajl_gen_bool(g, v->type == yajl_t_true);
		break;
	case yajl_t_null:
	case yajl_t_any:
		s = yajl_gen_null(g);
		break;
	}
	return s == yajl_gen_status_ok ? 0 : -1;
}

char *
json_gen_take(yajl_gen g, size_t *lenp)
{
	const unsigned char	*buf;
	size_t			 len;
	char			*out;

	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		return NULL;
	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(out, buf, len);
	out[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return out;
}

char *
json_dump(yajl_val v, int pretty, size_t *lenp)
{
	yajl_gen	 g;
	char		*out = NULL;
	const unsigned char *buf;
	size_t		 len;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		return NULL;
	if (pretty) {
		yajl_gen_config(g, yajl_gen_beautify, 1);
		yajl_gen_config(g, yajl_gen_indent_string, "  ");
	}
	if (json_gen_val(g, v) == 0) {
		out = json_gen_take(g, &len);
		/* yajl's beautifier already ends a document with a newline. */
		if (out != NULL && pretty && (len == 0 || out[len - 1] != '\n')) {
			char *p = realloc(out, len + 2);

			if (p == NULL) {
				free(out);
				out = NULL;
			} else {
				out = p;
				out[len++] = '\n';
				out[len] = '\0';
			}
		}
		if (lenp != NULL)
			*lenp = len;
	}
	/* The generator's buffer may hold a secret. */
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		explicit_bzero((void *)buf, len);
	yajl_gen_free(g);
	return out;
}

void
json_gen_str(yajl_gen g, const char *s)
{
	if (s == NULL)
		s = "";
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void
json_gen_kstr(yajl_gen g, const char *k, const char *v)
{
	json_gen_str(g, k);
	if (v == NULL)
		yajl_gen_null(g);
	else
		json_gen_str(g, v);
}

void
json_gen_kbool(yajl_gen g, const char *k, int v)
{
	json_gen_str(g, k);
	yajl_gen_bool(g, v);
}

void
json_gen_kint(yajl_gen g, const char *k, long long v)
{
	json_gen_str(g, k);
	yajl_gen_integer(g, v);
}

void
json_gen_knull(yajl_gen g, const char *k)
{
	json_gen_str(g, k);
	yajl_gen_null(g);
}
