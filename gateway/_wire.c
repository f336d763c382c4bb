/* Passes over whole messages that the outbound path makes several times each: line-end
 * checks and the DATA reader's line lengths, the digits a phone scan starts from, header
 * blocks split into fields, quoted-printable encoding, the probes of DKIM's relaxed body
 * canonicalisation, HTML tags read by pattern, and the word-anchored identity scan. Each is
 * one loop over the buffer where Python made several passes, a copy or a loop per line. The
 * Python definitions stay beside each use (gateway/lineends.py, gateway/protocol.py,
 * gateway/mime.py, gateway/auth/dkim.py, gateway/identity/) and run when this module was not
 * compiled; tests hold both to the same results on generated input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Eight bytes at a time (SWAR): a byte repeated in each of a word's bytes, their high bits. */
#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* True when every LF is preceded by a CR; with `every_cr`, also every CR followed by an LF. */
static int crlf_only(const char *data, Py_ssize_t size, int every_cr) {
    const char *end = data + size;
    const char *at = data;
    while ((at = memchr(at, '\n', end - at)) != NULL) {
        if (at == data || at[-1] != '\r')
            return 0;
        at++;
    }
    if (!every_cr)
        return 1;
    at = data;
    while ((at = memchr(at, '\r', end - at)) != NULL) {
        if (at + 1 == end || at[1] != '\n')
            return 0;
        at++;
    }
    return 1;
}

static PyObject *crlf_check(PyObject *arg, int every_cr) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int result = crlf_only(view.buf, view.len, every_cr);
    PyBuffer_Release(&view);
    return PyBool_FromLong(result);
}

static PyObject *only_crlf(PyObject *module, PyObject *arg) { return crlf_check(arg, 1); }

static PyObject *lf_after_cr(PyObject *module, PyObject *arg) { return crlf_check(arg, 0); }

/* (length of the first, longest of those between, length of the last, count) of the lines
 * of data.split(b"\r\n"): what the DATA reader checks against the line length limit. */
static PyObject *line_lengths(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *data = view.buf, *end = data + view.len, *line = data, *at = data;
    Py_ssize_t first = -1, longest = 0, count = 1;
    while ((at = memchr(at, '\n', end - at)) != NULL) {
        if (at > data && at[-1] == '\r' && at - 1 >= line) {
            Py_ssize_t length = at - 1 - line;
            if (first < 0)
                first = length;
            else if (length > longest)
                longest = length;
            count++;
            line = at + 1;
        }
        at++;
    }
    Py_ssize_t last = end - line;
    PyBuffer_Release(&view);
    return Py_BuildValue("(nnnn)", first < 0 ? last : first, longest, last, count);
}

/* --- digits -------------------------------------------------------------------------------
 * digit_positions(text, most): the positions of the ASCII digits in text, in order, or None
 * when there are more than `most` (the phone scan then runs its regular expression over the
 * whole text). What ten str.find loops, one per digit, give, in one pass. */
static PyObject *digit_positions(PyObject *module, PyObject *args) {
    PyObject *text;
    Py_ssize_t most;
    if (!PyArg_ParseTuple(args, "Un", &text, &most))
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = PyUnicode_GET_LENGTH(text);
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    Py_ssize_t i = 0;
    while (i < size) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (kind == PyUnicode_1BYTE_KIND) {
            /* Eight characters at a time past those that hold no digit (prose mostly). */
            const unsigned char *bytes = data;
            for (; i + 8 <= size; i += 8) {
                uint64_t x, low;
                memcpy(&x, bytes + i, 8);
                low = x & ~HIGHS; /* no carry between bytes below */
                if ((low + ONES * (0x80 - '0')) & ~(low + ONES * (0x80 - '9' - 1)) & ~x & HIGHS)
                    break;
            }
            if (i >= size)
                break;
        }
#endif
        Py_UCS4 c = PyUnicode_READ(kind, data, i++);
        if (c < '0' || c > '9')
            continue;
        if (PyList_GET_SIZE(found) == most) {
            Py_DECREF(found);
            Py_RETURN_NONE;
        }
        PyObject *position = PyLong_FromSsize_t(i - 1);
        if (position == NULL || PyList_Append(found, position) < 0) {
            Py_XDECREF(position);
            Py_DECREF(found);
            return NULL;
        }
        Py_DECREF(position);
    }
    return found;
}

/* --- header blocks ----------------------------------------------------------------------
 * header_fields(raw, start, end) gives (fields, items) for the header block raw[start:end]:
 * what gateway/mime.py's _fields and _plain_header_items give (their definitions). fields:
 * (lower-case name or "", start, end) of each field with its continuation lines, lines split
 * as bytes.splitlines splits them; items: (name, value) as email's compat32 parser reads a
 * block without defects, or None for any other block. */
typedef struct {
    Py_ssize_t start, end, name_start, name_end; /* name_end == name_start: no name */
} Field;

static int is_name_byte(unsigned char c) { return c >= '!' && c <= '~' && c != ':'; }

static int is_strip_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

static PyObject *header_fields(PyObject *module, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &start, &end))
        return NULL;
    const unsigned char *raw = view.buf;
    if (end > view.len)
        end = view.len;
    if (start < 0)
        start = 0;
    Py_ssize_t capacity = 16, count = 0;
    Field *fields = PyMem_Malloc(capacity * sizeof(Field));
    PyObject *field_list = NULL, *items = NULL, *result = NULL;
    if (fields == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t position = start; position < end;) {
        Py_ssize_t line_end = position;
        while (line_end < end && raw[line_end] != '\r' && raw[line_end] != '\n')
            line_end++;
        if (line_end < end)
            line_end += raw[line_end] == '\r' && line_end + 1 < end && raw[line_end + 1] == '\n'
                ? 2 : 1;
        if (count && (raw[position] == ' ' || raw[position] == '\t')) {
            fields[count - 1].end = line_end;
        } else {
            if (count == capacity) {
                Field *grown = PyMem_Realloc(fields, 2 * capacity * sizeof(Field));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                fields = grown;
                capacity *= 2;
            }
            Field *field = &fields[count++];
            field->start = position;
            field->end = line_end;
            field->name_start = field->name_end = position;
            const unsigned char *colon = memchr(raw + position, ':', line_end - position);
            if (colon != NULL) {
                Py_ssize_t name_start = position, name_end = colon - raw;
                while (name_start < name_end && is_strip_space(raw[name_start]))
                    name_start++;
                while (name_end > name_start && is_strip_space(raw[name_end - 1]))
                    name_end--;
                Py_ssize_t i = name_start;
                while (i < name_end && is_name_byte(raw[i]))
                    i++;
                if (i == name_end && name_end > name_start) {
                    field->name_start = name_start;
                    field->name_end = name_end;
                }
            }
        }
        position = line_end;
    }
    field_list = PyList_New(count);
    if (field_list == NULL)
        goto done;
    for (Py_ssize_t f = 0; f < count; f++) {
        char name[256];
        Py_ssize_t length = fields[f].name_end - fields[f].name_start;
        PyObject *name_object;
        if (length <= (Py_ssize_t)sizeof(name)) {
            for (Py_ssize_t i = 0; i < length; i++)
                name[i] = (char)Py_TOLOWER(raw[fields[f].name_start + i]);
            name_object = PyUnicode_DecodeASCII(name, length, NULL);
        } else {
            PyObject *original = PyUnicode_DecodeASCII((const char *)raw + fields[f].name_start,
                                                       length, NULL);
            name_object = original ? PyObject_CallMethod(original, "lower", NULL) : NULL;
            Py_XDECREF(original);
        }
        PyObject *entry = name_object ? Py_BuildValue("(Nnn)", name_object, fields[f].start,
                                                      fields[f].end) : NULL;
        if (entry == NULL)
            goto done;
        PyList_SET_ITEM(field_list, f, entry);
    }
    /* Plain: no line break that str.splitlines knows and bytes.splitlines does not, and every
     * field a name followed at once by its colon. */
    int plain = 1;
    for (Py_ssize_t i = start; i < end && plain; i++) {
        unsigned char c = raw[i];
        if (c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e)
            plain = 0;
    }
    if (plain) {
        items = PyList_New(count);
        if (items == NULL)
            goto done;
        for (Py_ssize_t f = 0; f < count && plain; f++) {
            Py_ssize_t colon = fields[f].start;
            while (colon < fields[f].end && is_name_byte(raw[colon]))
                colon++;
            if (colon == fields[f].start || colon == fields[f].end || raw[colon] != ':') {
                plain = 0;
                break;
            }
            Py_ssize_t value_start = colon + 1, value_end = fields[f].end;
            while (value_start < value_end && (raw[value_start] == ' ' || raw[value_start] == '\t'))
                value_start++;
            while (value_end > value_start &&
                   (raw[value_end - 1] == '\r' || raw[value_end - 1] == '\n'))
                value_end--;
            PyObject *name = PyUnicode_DecodeASCII((const char *)raw + fields[f].start,
                                                   colon - fields[f].start, NULL);
            PyObject *value = name ? PyUnicode_DecodeASCII((const char *)raw + value_start,
                                                           value_end - value_start,
                                                           "surrogateescape") : NULL;
            PyObject *item = value ? PyTuple_Pack(2, name, value) : NULL;
            Py_XDECREF(name);
            Py_XDECREF(value);
            if (item == NULL)
                goto done;
            PyList_SET_ITEM(items, f, item);
        }
        if (!plain)
            Py_CLEAR(items);
    }
    result = Py_BuildValue("(OO)", field_list, items ? items : Py_None);
done:
    Py_XDECREF(field_list);
    Py_XDECREF(items);
    PyMem_Free(fields);
    PyBuffer_Release(&view);
    return result;
}

/* --- quoted-printable -------------------------------------------------------------------
 * binascii.b2a_qp(data) (istext, no quotetabs, no header) of data with every CRLF read as LF,
 * then every LF written as CRLF: what gateway/mime.py's encode_qp gives. The rules are binascii's: a soft break "=" before
 * a line would pass 76 characters; "=", bytes above 126, control bytes but TAB, CR and LF,
 * a lone "." line and a space or tab at the very end are escaped; a space or tab before a
 * line end becomes =20 or =09; a line end is "\n" (or "\r\n", kept, when the first line end
 * of the data is one: binascii's own rule). Each line starts afresh, so a line of plain
 * characters (nearly every line of a reply) is copied in pieces of 75; any other line takes
 * binascii's walk byte by byte. */
#define QP_LINE 76

typedef struct {
    PyObject *bytes;
    char *out;
    Py_ssize_t size, capacity;
    int keep_cr;
} Output;

static int reserve(Output *o, Py_ssize_t more) {
    if (o->size + more <= o->capacity)
        return 0;
    Py_ssize_t capacity = o->capacity * 2;
    if (capacity < o->size + more)
        capacity = o->size + more;
    if (_PyBytes_Resize(&o->bytes, capacity) < 0)
        return -1;
    o->out = PyBytes_AS_STRING(o->bytes);
    o->capacity = capacity;
    return 0;
}

/* The put functions write into room reserved before them. */
static void put(Output *o, char c) { o->out[o->size++] = c; }

static void put_line_end(Output *o) {
    if (o->keep_cr)
        put(o, '\r');
    put(o, '\r'); /* every LF becomes CRLF */
    put(o, '\n');
}

static void put_escape(Output *o, unsigned char c) {
    static const char hex[] = "0123456789ABCDEF";
    put(o, '=');
    put(o, hex[c >> 4]);
    put(o, hex[c & 15]);
}

static void put_soft_break(Output *o) {
    put(o, '=');
    put_line_end(o);
}

/* A space or tab written just before a line end is escaped instead. */
static void protect_line_end(Output *o) {
    char before = o->size ? o->out[o->size - 1] : 0;
    if (before == ' ' || before == '\t') {
        o->size--;
        put_escape(o, (unsigned char)before);
    }
}

/* Printable ASCII but "=", and space and tab: written as they are, away from line ends. */
static unsigned char plain[256];

static void init_plain(void) {
    for (int c = 33; c <= 126; c++)
        plain[c] = c != '=';
    plain[' '] = plain['\t'] = 1;
}

/* Worst case for one byte of input: soft break, escape; or =XX for the byte before, line end. */
#define QP_MOST_PER_BYTE 7

/* binascii's walk from the start of a line through its line end (or the end of the data);
 * returns where the next line starts. */
static Py_ssize_t qp_line_walk(const unsigned char *data, Py_ssize_t size, Py_ssize_t in,
                               Output *o) {
    Py_ssize_t line = 0;
    while (in < size) {
        if (reserve(o, QP_MOST_PER_BYTE) < 0)
            return -1;
        unsigned char c = data[in];
        int lone_dot = c == '.' && line == 0 &&
            (in + 1 == size || data[in + 1] == '\n' || data[in + 1] == '\r' ||
             data[in + 1] == 0);
        if (c > 126 || c == '=' || lone_dot ||
            ((c == '\t' || c == ' ') && in + 1 == size) ||
            (c < 33 && c != '\r' && c != '\n' && c != '\t' && c != ' ')) {
            if (line + 3 >= QP_LINE) {
                put_soft_break(o);
                line = 0;
            }
            put_escape(o, c);
            line += 3;
            in++;
        } else if (c == '\n' || (c == '\r' && in + 1 < size && data[in + 1] == '\n')) {
            if (in > 0)
                protect_line_end(o);
            put_line_end(o);
            return in + (c == '\r' ? 2 : 1);
        } else {
            if (in + 1 != size && data[in + 1] != '\n' && line + 1 >= QP_LINE) {
                put_soft_break(o);
                line = 0;
            }
            put(o, (char)c);
            line++;
            in++;
        }
    }
    return in;
}

/* A line of plain bytes, not "." alone and not ending the data with a space or tab: what
 * the walk gives, copied in pieces (75 characters, the last up to 76). */
static int qp_plain_line(const unsigned char *data, Py_ssize_t start, Py_ssize_t end,
                         int line_end, Output *o) {
    Py_ssize_t length = end - start;
    Py_ssize_t breaks = length > QP_LINE ? (length - 2) / (QP_LINE - 1) : 0;
    if (reserve(o, length + breaks * 4 + 8) < 0)
        return -1;
    const unsigned char *piece = data + start;
    for (Py_ssize_t i = 0; i < breaks; i++, piece += QP_LINE - 1) {
        memcpy(o->out + o->size, piece, QP_LINE - 1);
        o->size += QP_LINE - 1;
        put_soft_break(o);
    }
    memcpy(o->out + o->size, piece, data + end - piece);
    o->size += data + end - piece;
    if (line_end) {
        protect_line_end(o);
        put_line_end(o);
    }
    return 0;
}

/* A copy of data with every CRLF as LF (text from Python keeps its CRLF line ends), or NULL
 * with *size unchanged when data holds no CR. */
static unsigned char *lf_line_ends(const unsigned char *data, Py_ssize_t *size, int *failed) {
    *failed = 0;
    if (memchr(data, '\r', *size) == NULL)
        return NULL;
    unsigned char *copy = PyMem_Malloc(*size ? *size : 1);
    if (copy == NULL) {
        *failed = 1;
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t written = 0, at = 0;
    while (at < *size) {
        const unsigned char *cr = memchr(data + at, '\r', *size - at);
        Py_ssize_t until = cr ? cr - data : *size;
        memcpy(copy + written, data + at, until - at);
        written += until - at;
        if (until == *size)
            break;
        if (until + 1 == *size || data[until + 1] != '\n')
            copy[written++] = '\r'; /* a lone CR stays */
        at = until + 1;
    }
    *size = written;
    return copy;
}

static PyObject *encode_qp_crlf(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_ssize_t size = view.len;
    int failed;
    unsigned char *converted = lf_line_ends(view.buf, &size, &failed);
    if (failed) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const unsigned char *data = converted ? converted : view.buf;
    const unsigned char *first_lf = memchr(data, '\n', size);
    Output o = {NULL, NULL, 0, size + size / 32 + 16, 0};
    o.keep_cr = first_lf != NULL && first_lf > data && first_lf[-1] == '\r';
    o.bytes = PyBytes_FromStringAndSize(NULL, o.capacity);
    if (o.bytes == NULL)
        goto done;
    o.out = PyBytes_AS_STRING(o.bytes);
    Py_ssize_t in = 0;
    while (in < size) {
        const unsigned char *lf = memchr(data + in, '\n', size - in);
        Py_ssize_t end = lf ? lf - data : size;
        Py_ssize_t at = in;
        while (at < end && plain[data[at]])
            at++;
        int simple = at == end && !(end - in == 1 && data[in] == '.') &&
            (lf || (data[end - 1] != ' ' && data[end - 1] != '\t'));
        if (simple) {
            if (qp_plain_line(data, in, end, lf != NULL, &o) < 0)
                goto failed;
            in = lf ? end + 1 : end;
        } else if ((in = qp_line_walk(data, size, in, &o)) < 0) {
            goto failed;
        }
    }
    if (_PyBytes_Resize(&o.bytes, o.size) < 0)
        o.bytes = NULL;
    goto done;
failed:
    Py_CLEAR(o.bytes);
done:
    PyMem_Free(converted);
    PyBuffer_Release(&view);
    return o.bytes;
}

/* --- DKIM relaxed body probes -------------------------------------------------------------
 * Bit 1: a space or tab stands before a CRLF (relaxed strips it). Bit 2: a tab, or two
 * spaces together (relaxed compresses them). Most bodies hold no tab, and then only the
 * spaces matter: eight bytes at a time, looking closer only where a space is followed by a
 * space or a CR. */

/* 0x80 in every byte of x that equals c, 0 in the others (exact: no carry between bytes). */
static inline uint64_t bytes_equal(uint64_t x, unsigned char c) {
    uint64_t t = x ^ (ONES * c);
    return ~(((t & ~HIGHS) + ~HIGHS) | t) & HIGHS;
}

static long changes_at(const unsigned char *data, Py_ssize_t size, Py_ssize_t i) {
    long found = 0;
    if (data[i] == '\t')
        found |= 2;
    if (data[i] != ' ' && data[i] != '\t')
        return found;
    if (data[i] == ' ' && i + 1 < size && data[i + 1] == ' ')
        found |= 2;
    if (i + 2 < size && data[i + 1] == '\r' && data[i + 2] == '\n')
        found |= 1;
    return found;
}

static long relaxed_changes_of(const unsigned char *data, Py_ssize_t size) {
    long found = 0;
    Py_ssize_t i = 0;
    if (memchr(data, '\t', size) != NULL) {
        for (; i < size && found != 3; i++)
            found |= changes_at(data, size, i);
        return found;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= size && found != 3; i += 8) {
        uint64_t x;
        memcpy(&x, data + i, 8);
        uint64_t spaces = bytes_equal(x, ' ');
        if (!spaces)
            continue;
        /* A space followed within the word by a space or a CR; a space in the last byte is
         * followed by what the next word holds. */
        uint64_t closer = spaces & ((spaces | bytes_equal(x, '\r')) >> 8);
        if (spaces >> 63)
            closer |= 1ULL << 63;
        while (closer) {
            found |= changes_at(data, size, i + __builtin_ctzll(closer) / 8);
            closer &= closer - 1;
        }
    }
#endif
    for (; i < size && found != 3; i++)
        found |= changes_at(data, size, i);
    return found;
}

static PyObject *relaxed_changes(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    long found = relaxed_changes_of(view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromLong(found);
}

/* --- HTML tags as a reader reads them ------------------------------------------------------
 * What gateway/identity/markup.py's two regular expressions give for ASCII markup, one after
 * the other: `</?(?:NAMES)\b[^<>]*>` removed (inline tags, so 'Ja<b>ne</b>' reads 'Jane'),
 * then `<[^<>]*>` as a space. NAMES are the lower-case inline tag names (a frozenset), matched
 * without regard to case; a name ends where the run of word characters ends. */
#define LONGEST_TAG_NAME 16

static int is_ascii_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Where the first "<" or ">" at or after `at` is, or `size`. */
static Py_ssize_t next_angle(const char *text, Py_ssize_t size, Py_ssize_t at) {
    while (at < size && text[at] != '<' && text[at] != '>')
        at++;
    return at;
}

/* 1 when text[at] starts an inline tag, its end (after ">") in *end; 0 when not; -1 on error. */
static int inline_tag_at(const char *text, Py_ssize_t size, Py_ssize_t at, PyObject *names,
                         Py_ssize_t *end) {
    Py_ssize_t start = at + 1;
    if (start < size && text[start] == '/')
        start++;
    Py_ssize_t stop = start;
    while (stop < size && is_ascii_word((unsigned char)text[stop]))
        stop++;
    if (stop == start || stop - start > LONGEST_TAG_NAME)
        return 0;
    char name[LONGEST_TAG_NAME];
    for (Py_ssize_t i = start; i < stop; i++)
        name[i - start] = (char)Py_TOLOWER((unsigned char)text[i]);
    PyObject *key = PyUnicode_FromStringAndSize(name, stop - start);
    if (key == NULL)
        return -1;
    int known = PySet_Contains(names, key);
    Py_DECREF(key);
    if (known <= 0)
        return known;
    Py_ssize_t close = next_angle(text, size, stop);
    if (close == size || text[close] != '>')
        return 0;
    *end = close + 1;
    return 1;
}

/* Copies text[at:] up to the next "<" to the end of out; returns where that "<" is, or size. */
static Py_ssize_t copy_to_tag(const char *text, Py_ssize_t size, Py_ssize_t at, char *out,
                              Py_ssize_t *out_size) {
    const char *angle = memchr(text + at, '<', size - at);
    Py_ssize_t until = angle ? angle - text : size;
    memcpy(out + *out_size, text + at, until - at);
    *out_size += until - at;
    return until;
}

static PyObject *tags_as_read(PyObject *module, PyObject *args) {
    PyObject *markup, *names;
    if (!PyArg_ParseTuple(args, "UO!", &markup, &PyFrozenSet_Type, &names))
        return NULL;
    if (!PyUnicode_IS_ASCII(markup)) {
        PyErr_SetString(PyExc_ValueError, "tags_as_read reads ASCII markup only");
        return NULL;
    }
    const char *text = (const char *)PyUnicode_DATA(markup);
    Py_ssize_t size = PyUnicode_GET_LENGTH(markup);
    char *kept = PyMem_Malloc(size + 1), *read = PyMem_Malloc(size + 1);
    PyObject *result = NULL;
    if (kept == NULL || read == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Inline tags removed. */
    Py_ssize_t kept_size = 0, at = 0;
    while (at < size) {
        Py_ssize_t until = copy_to_tag(text, size, at, kept, &kept_size);
        if (until == size)
            break;
        Py_ssize_t end;
        int found = inline_tag_at(text, size, until, names, &end);
        if (found < 0)
            goto done;
        if (found) {
            at = end;
        } else {
            kept[kept_size++] = '<';
            at = until + 1;
        }
    }
    /* Every other tag as a space. */
    Py_ssize_t read_size = 0;
    at = 0;
    while (at < kept_size) {
        Py_ssize_t until = copy_to_tag(kept, kept_size, at, read, &read_size);
        if (until == kept_size)
            break;
        Py_ssize_t close = next_angle(kept, kept_size, until + 1);
        if (close < kept_size && kept[close] == '>') {
            read[read_size++] = ' ';
            at = close + 1;
        } else {
            read[read_size++] = '<';
            at = until + 1;
        }
    }
    result = PyUnicode_DecodeASCII(read, read_size, NULL);
done:
    PyMem_Free(kept);
    PyMem_Free(read);
    return result;
}

/* --- keys between word edges -------------------------------------------------------------
 * EdgeKeys(keys, edges).find(text) gives what an Aho-Corasick automaton of `keys` finds, every
 * occurrence overlapping others, in b" " + text.encode().translate(edges) + b" ", as
 * (key index, start, end) in that padded text: the identity scan's word-anchored pass
 * (gateway/identity/patterns.py). Every key starts with a space, so only the places where the
 * padded text has one are tried, each against the keys whose next two bytes are the text's
 * (one bucket of 65,536); an automaton restarted at every space cost more than this. The
 * translation is read on the way, not copied. */
#define BUCKETS 65536

typedef struct {
    PyObject_HEAD
    unsigned char edges[256];
    Py_ssize_t count;
    char **keys;
    Py_ssize_t *lengths;
    int32_t *next; /* the next key of the same bucket, or -1 */
    int32_t *heads;
    uint64_t used[BUCKETS / 64]; /* buckets holding a key: looked at before heads (8 KB) */
    int words_are_kept; /* no letter a-z or digit reads as a space (the usual table) */
} EdgeKeys;

static void EdgeKeys_dealloc(EdgeKeys *self) {
    for (Py_ssize_t i = 0; i < self->count; i++)
        PyMem_Free(self->keys ? self->keys[i] : NULL);
    PyMem_Free(self->keys);
    PyMem_Free(self->lengths);
    PyMem_Free(self->next);
    PyMem_Free(self->heads);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *EdgeKeys_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *key_list;
    Py_buffer edges;
    if (!PyArg_ParseTuple(args, "O!y*", &PyList_Type, &key_list, &edges))
        return NULL;
    EdgeKeys *self = NULL;
    if (edges.len != 256) {
        PyErr_SetString(PyExc_ValueError, "edges must be a table of 256 bytes");
        goto failed;
    }
    self = (EdgeKeys *)type->tp_alloc(type, 0);
    if (self == NULL)
        goto failed;
    memcpy(self->edges, edges.buf, 256);
    self->words_are_kept = 1;
    for (int c = 0; c < 256; c++) {
        if (((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) && self->edges[c] == ' ')
            self->words_are_kept = 0;
    }
    Py_ssize_t count = PyList_GET_SIZE(key_list);
    if (count >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many keys");
        goto failed;
    }
    self->keys = PyMem_Calloc(count ? count : 1, sizeof(char *));
    self->lengths = PyMem_Calloc(count ? count : 1, sizeof(Py_ssize_t));
    self->next = PyMem_Calloc(count ? count : 1, sizeof(int32_t));
    self->heads = PyMem_Malloc(BUCKETS * sizeof(int32_t));
    if (!self->keys || !self->lengths || !self->next || !self->heads) {
        PyErr_NoMemory();
        goto failed;
    }
    self->count = count;
    for (Py_ssize_t b = 0; b < BUCKETS; b++)
        self->heads[b] = -1;
    /* Added from the last, so each bucket lists its keys in the order given. */
    for (Py_ssize_t i = count - 1; i >= 0; i--) {
        PyObject *key = PyList_GET_ITEM(key_list, i);
        if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) < 3 || PyBytes_AS_STRING(key)[0] != ' ') {
            PyErr_SetString(PyExc_ValueError, "every key is bytes of three or more, the first a space");
            goto failed;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(key);
        self->keys[i] = PyMem_Malloc(length);
        if (self->keys[i] == NULL) {
            PyErr_NoMemory();
            goto failed;
        }
        memcpy(self->keys[i], PyBytes_AS_STRING(key), length);
        self->lengths[i] = length;
        unsigned char *k = (unsigned char *)self->keys[i];
        int bucket = k[1] << 8 | k[2];
        self->next[i] = self->heads[bucket];
        self->heads[bucket] = (int32_t)i;
        self->used[bucket / 64] |= 1ULL << (bucket % 64);
    }
    PyBuffer_Release(&edges);
    return (PyObject *)self;
failed:
    PyBuffer_Release(&edges);
    Py_XDECREF(self);
    return NULL;
}

/* Byte i of the padded text. */
static inline unsigned char padded_at(const EdgeKeys *self, const unsigned char *text,
                                      Py_ssize_t size, Py_ssize_t i) {
    return i == 0 || i == size + 1 ? ' ' : self->edges[text[i - 1]];
}

/* Appends every key of `bucket` found at `start` of the padded text; -1 on error. */
static int keys_of_bucket_at(const EdgeKeys *self, const unsigned char *text, Py_ssize_t size,
                             Py_ssize_t start, int bucket, PyObject *found) {
    Py_ssize_t padded = size + 2;
    for (int32_t k = self->heads[bucket]; k != -1; k = self->next[k]) {
        Py_ssize_t length = self->lengths[k];
        if (start + length > padded)
            continue;
        const unsigned char *key = (const unsigned char *)self->keys[k];
        Py_ssize_t i = 3;
        while (i < length && key[i] == padded_at(self, text, size, start + i))
            i++;
        if (i < length)
            continue;
        PyObject *match = Py_BuildValue("(inn)", (int)k, start, start + length);
        if (match == NULL || PyList_Append(found, match) < 0) {
            Py_XDECREF(match);
            return -1;
        }
        Py_DECREF(match);
    }
    return 0;
}

/* Appends every key found at `start` of the padded text; -1 on error. Most places hold none:
 * their two bytes after the space name an empty bucket. */
static inline int keys_at(const EdgeKeys *self, const unsigned char *text, Py_ssize_t size,
                          Py_ssize_t start, PyObject *found) {
    if (start + 3 > size + 2)
        return 0;
    int bucket = padded_at(self, text, size, start + 1) << 8 |
                 padded_at(self, text, size, start + 2);
    if (!(self->used[bucket >> 6] & (1ULL << (bucket & 63))))
        return 0;
    return keys_of_bucket_at(self, text, size, start, bucket, found);
}

/* Tries the keys at every byte of text[from:to] that reads as a space; -1 on error. */
static int keys_at_edges(const EdgeKeys *self, const unsigned char *text, Py_ssize_t size,
                         Py_ssize_t from, Py_ssize_t to, PyObject *found) {
    for (Py_ssize_t i = from; i < to; i++) {
        if (self->edges[text[i]] == ' ' && keys_at(self, text, size, i + 1, found) < 0)
            return -1;
    }
    return 0;
}

/* 0x80 in every byte of x (ASCII) that is a letter a-z or a digit. */
static inline uint64_t word_bytes(uint64_t x) {
    uint64_t letters = (x + ONES * (0x80 - 'a')) & ~(x + ONES * (0x80 - 'z' - 1));
    uint64_t digits = (x + ONES * (0x80 - '0')) & ~(x + ONES * (0x80 - '9' - 1));
    return (letters | digits) & HIGHS;
}

static PyObject *EdgeKeys_find(EdgeKeys *self, PyObject *arg) {
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_ValueError, "EdgeKeys.find reads ASCII text only");
        return NULL;
    }
    const unsigned char *text = PyUnicode_DATA(arg);
    Py_ssize_t size = PyUnicode_GET_LENGTH(arg), i = 0;
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    /* The padding's first space, then every byte of text that reads as one (text[i] is
     * byte i + 1 of the padded text). */
    if (keys_at(self, text, size, 0, found) < 0)
        goto failed;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (self->words_are_kept) {
        /* Eight bytes at a time: letters and digits never read as a space, so only the
         * other bytes are looked up. */
        for (; i + 8 <= size; i += 8) {
            uint64_t x;
            memcpy(&x, text + i, 8);
            uint64_t others = ~word_bytes(x) & HIGHS;
            while (others) {
                Py_ssize_t at = i + __builtin_ctzll(others) / 8;
                if (self->edges[text[at]] == ' ' && keys_at(self, text, size, at + 1, found) < 0)
                    goto failed;
                others &= others - 1;
            }
        }
    }
#endif
    if (keys_at_edges(self, text, size, i, size, found) < 0)
        goto failed;
    return found;
failed:
    Py_DECREF(found);
    return NULL;
}

static PyMethodDef EdgeKeys_methods[] = {
    {"find", (PyCFunction)EdgeKeys_find, METH_O,
     "(key index, start, end) of every key in b' ' + text.translate(edges) + b' '."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EdgeKeysType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway._wire.EdgeKeys",
    .tp_basicsize = sizeof(EdgeKeys),
    .tp_dealloc = (destructor)EdgeKeys_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Keys that start with a space, found in text read through a byte table.",
    .tp_methods = EdgeKeys_methods,
    .tp_new = EdgeKeys_new,
};

static PyMethodDef methods[] = {
    {"only_crlf", only_crlf, METH_O, "True when every CR and every LF is part of a CRLF."},
    {"lf_after_cr", lf_after_cr, METH_O, "True when every LF is preceded by a CR."},
    {"digit_positions", digit_positions, METH_VARARGS,
     "Positions of the ASCII digits in text, or None when there are more than `most`."},
    {"header_fields", header_fields, METH_VARARGS,
     "(fields, items) of the header block raw[start:end], as gateway/mime.py reads it."},
    {"line_lengths", line_lengths, METH_O,
     "(first, longest between, last, count) of the lengths of data.split(b'\\r\\n')."},
    {"encode_qp_crlf", encode_qp_crlf, METH_O,
     "binascii.b2a_qp(data.replace(b'\\r\\n', b'\\n')) with every LF written as CRLF."},
    {"relaxed_changes", relaxed_changes, METH_O,
     "1 | 2: whitespace before a CRLF | a tab or two spaces (what relaxed canonicalisation "
     "changes)."},
    {"tags_as_read", tags_as_read, METH_VARARGS,
     "ASCII markup with inline tags (named in a frozenset) removed and other tags as a space."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_wire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__wire(void) {
    init_plain();
    if (PyType_Ready(&EdgeKeysType) < 0)
        return NULL;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL)
        return NULL;
    Py_INCREF(&EdgeKeysType);
    if (PyModule_AddObject(created, "EdgeKeys", (PyObject *)&EdgeKeysType) < 0) {
        Py_DECREF(&EdgeKeysType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
