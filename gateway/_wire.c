/* Byte-level passes over whole messages that the outbound path makes several times each:
 * line-end checks, quoted-printable encoding, the probes of DKIM's relaxed body
 * canonicalisation. Each is one loop over the buffer; in Python they were several passes
 * (bytes.count for each line end) or a loop per line. The Python definitions stay where
 * they were (gateway/lineends.py, gateway/mime.py, gateway/auth/dkim.py) and run when this
 * module was not compiled; tests hold both to the same results on generated input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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

static PyObject *only_crlf(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int result = crlf_only(view.buf, view.len, 1);
    PyBuffer_Release(&view);
    return PyBool_FromLong(result);
}

static PyObject *lf_after_cr(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int result = crlf_only(view.buf, view.len, 0);
    PyBuffer_Release(&view);
    return PyBool_FromLong(result);
}

/* --- quoted-printable -------------------------------------------------------------------
 * binascii.b2a_qp(data) (istext, no quotetabs, no header), then every LF written as CRLF:
 * what gateway/mime.py's encode_qp gives. The rules are binascii's: a soft break "=" before
 * a line would pass 76 characters; "=", bytes above 126, control bytes but TAB, CR and LF,
 * a lone "." line and a space or tab at the very end are escaped; a space or tab before a
 * line end becomes =20 or =09; a line end is "\n" (or "\r\n", kept, when the first line end
 * of the data is one: binascii's own rule). Written twice through one walk: once to count,
 * once to fill the output. */
#define QP_LINE 76

typedef struct {
    char *out; /* NULL while counting */
    Py_ssize_t size;
} Output;

static void put(Output *o, char c) {
    if (o->out)
        o->out[o->size] = c;
    o->size++;
}

static void put_line_end(Output *o, int keep_cr) {
    if (keep_cr)
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

static void qp_walk(const unsigned char *data, Py_ssize_t size, int keep_cr, Output *o) {
    Py_ssize_t line = 0, in = 0;
    while (in < size) {
        unsigned char c = data[in];
        int lone_dot = c == '.' && line == 0 &&
            (in + 1 == size || data[in + 1] == '\n' || data[in + 1] == '\r' ||
             data[in + 1] == 0);
        if (c > 126 || c == '=' || lone_dot ||
            ((c == '\t' || c == ' ') && in + 1 == size) ||
            (c < 33 && c != '\r' && c != '\n' && c != '\t' && c != ' ')) {
            if (line + 3 >= QP_LINE) {
                put(o, '=');
                put_line_end(o, keep_cr);
                line = 0;
            }
            put_escape(o, c);
            line += 3;
            in++;
        } else if (c == '\n' || (c == '\r' && in + 1 < size && data[in + 1] == '\n')) {
            /* A space or tab written just before the line end is escaped instead (counting,
             * binascii reads the input; filling, the output: the same byte). */
            if (in > 0) {
                char before = o->out ? o->out[o->size - 1] : (char)data[in - 1];
                if (before == ' ' || before == '\t') {
                    o->size--;
                    put_escape(o, (unsigned char)before);
                }
            }
            put_line_end(o, keep_cr);
            line = 0;
            in += c == '\r' ? 2 : 1;
        } else {
            if (in + 1 != size && data[in + 1] != '\n' && line + 1 >= QP_LINE) {
                put(o, '=');
                put_line_end(o, keep_cr);
                line = 0;
            }
            put(o, (char)c);
            line++;
            in++;
        }
    }
}

static PyObject *encode_qp_crlf(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *data = view.buf;
    const unsigned char *first_lf = memchr(data, '\n', view.len);
    int keep_cr = first_lf != NULL && first_lf > data && first_lf[-1] == '\r';
    Output counting = {NULL, 0};
    qp_walk(data, view.len, keep_cr, &counting);
    PyObject *result = PyBytes_FromStringAndSize(NULL, counting.size);
    if (result != NULL) {
        Output filling = {PyBytes_AS_STRING(result), 0};
        qp_walk(data, view.len, keep_cr, &filling);
    }
    PyBuffer_Release(&view);
    return result;
}

/* --- DKIM relaxed body probes -------------------------------------------------------------
 * Bit 1: a space or tab stands before a CRLF (relaxed strips it). Bit 2: a tab, or two
 * spaces together (relaxed compresses them). */
static PyObject *relaxed_changes(PyObject *module, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *data = view.buf;
    Py_ssize_t size = view.len;
    long found = 0;
    for (Py_ssize_t i = 0; i < size && found != 3; i++) {
        unsigned char c = data[i];
        if (c == '\t')
            found |= 2;
        if (c != ' ' && c != '\t')
            continue;
        if (c == ' ' && i + 1 < size && data[i + 1] == ' ')
            found |= 2;
        if (i + 2 < size && data[i + 1] == '\r' && data[i + 2] == '\n')
            found |= 1;
    }
    PyBuffer_Release(&view);
    return PyLong_FromLong(found);
}

static PyMethodDef methods[] = {
    {"only_crlf", only_crlf, METH_O, "True when every CR and every LF is part of a CRLF."},
    {"lf_after_cr", lf_after_cr, METH_O, "True when every LF is preceded by a CR."},
    {"encode_qp_crlf", encode_qp_crlf, METH_O,
     "binascii.b2a_qp(data) with every LF written as CRLF."},
    {"relaxed_changes", relaxed_changes, METH_O,
     "1 | 2: whitespace before a CRLF | a tab or two spaces (what relaxed canonicalisation "
     "changes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_wire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__wire(void) { return PyModule_Create(&module); }
