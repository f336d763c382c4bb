/* The ASCII steps of gateway/rules/normalise.py in compiled form, the classifier's sentence
 * split (ascii_sentences) and its search for the most harassing unit (best_unit, at the end).
 *
 * fold_ascii(text) gives what _pipeline's last five steps give for lower-case ASCII text:
 * leetspeak folded inside words, s p a c e d letters joined, whitespace collapsed (a run
 * holding a line break becomes one "\n"), glued words split, runs of a repeated letter
 * collapsed. Each step is one pass over a buffer, in the same order as the regular
 * expressions it replaces; normalise.py stays the definition, and a test compares the two on
 * generated text. The regular expressions cost about 0.4 ms on a 10 KB message, these passes
 * about 0.05 ms.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* What each ASCII character is to the steps, looked up once per character. */
enum {
    LETTER = 1,      /* [a-z] */
    WORD = 2,        /* \w on ASCII */
    LEET = 4,        /* [0-9@$!|+] */
    MARKER = 8,      /* [.\-_*~]: what may stand between s.p.l.i.t letters */
    SPACE = 16,      /* str.isspace() */
    LINE_BREAK = 32, /* str.splitlines() boundaries (\r\n counts once) */
};
static unsigned char kinds[256];

static void init_kinds(void) {
    for (int c = 'a'; c <= 'z'; c++)
        kinds[c] |= LETTER | WORD;
    for (int c = 'A'; c <= 'Z'; c++)
        kinds[c] |= WORD;
    for (int c = '0'; c <= '9'; c++)
        kinds[c] |= WORD | LEET;
    kinds['_'] |= WORD;
    for (const char *c = "@$!|+"; *c; c++)
        kinds[(unsigned char)*c] |= LEET;
    for (const char *c = ".-_*~"; *c; c++)
        kinds[(unsigned char)*c] |= MARKER;
    for (int c = '\t'; c <= '\r'; c++)
        kinds[c] |= SPACE;
    for (int c = 0x1c; c <= 0x1f; c++)
        kinds[c] |= SPACE;
    kinds[' '] |= SPACE;
    for (const char *c = "\n\r\x0b\x0c\x1c\x1d\x1e"; *c; c++)
        kinds[(unsigned char)*c] |= LINE_BREAK;
}

#define KIND(c) kinds[(unsigned char)(c)]
static int is_letter(char c) { return KIND(c) & LETTER; }
static int is_word(char c) { return KIND(c) & WORD; }
static int is_leet(char c) { return KIND(c) & LEET; }
/* [\w@$!|+€]: what a leet word is made of */
static int in_leet_word(char c) { return KIND(c) & (WORD | LEET); }
static int is_marker(char c) { return KIND(c) & MARKER; }
static int is_space(char c) { return KIND(c) & SPACE; }
static int is_line_break(char c) { return KIND(c) & LINE_BREAK; }

static char leet_letter(char c) {
    switch (c) {
    case '0': return 'o'; case '1': return 'i'; case '3': return 'e'; case '4': return 'a';
    case '5': return 's'; case '7': return 't'; case '8': return 'b'; case '9': return 'g';
    case '@': return 'a'; case '$': return 's'; case '!': return 'i'; case '|': return 'l';
    case '+': return 't';
    default: return c;
    }
}

/* normalise.QUANTITY_UNITS: after a number, a unit and not leet ("7h45", "6pm", "20kg") */
static const char *const quantity_units[] = {
    "h", "am", "pm", "st", "nd", "rd", "th", "er", "re", "e", "eme", "o", "a", "min", "mins",
    "hr", "hrs", "km", "kg", "gb", "mb", "tb", "cm", "mm", "ml", "kw", "kwh", "k", "m", "x", "s",
    "g", "d", "p", NULL};

/* normalise._QUANTITY: whether the run s[0:n] is digits and a unit, or digits "h" digits. */
static int is_quantity(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 0 || i == n)
        return 0;
    if (s[i] == 'h' && i + 1 < n) {
        Py_ssize_t k = i + 1;
        while (k < n && s[k] >= '0' && s[k] <= '9')
            k++;
        if (k == n)
            return 1;
    }
    for (const char *const *unit = quantity_units; *unit; unit++)
        if ((Py_ssize_t)strlen(*unit) == n - i && memcmp(*unit, s + i, n - i) == 0)
            return 1;
    return 0;
}

/* _LEET_NEIGHBOURS, then _LEET_WORD: every run of word characters that holds a letter has
 * its leet characters translated, up to its last \w character or a last "@" after a letter.
 * In place. */
static void fold_leet(char *s, Py_ssize_t n) {
    int any = 0;
    for (Py_ssize_t i = 0; i < n && !any; i++) {
        if (is_leet(s[i]) &&
            ((i > 0 && is_letter(s[i - 1])) || (i + 1 < n && is_letter(s[i + 1]))))
            any = 1;
    }
    if (!any)
        return;
    Py_ssize_t i = 0;
    while (i < n) {
        if (!in_leet_word(s[i])) {
            i++;
            continue;
        }
        Py_ssize_t start = i, last_word = -1;
        int letter = 0;
        for (; i < n && in_leet_word(s[i]); i++) {
            if (is_letter(s[i]))
                letter = 1;
            if (is_word(s[i]) || (s[i] == '@' && i > start && is_letter(s[i - 1])))
                last_word = i;
        }
        if (letter && !is_quantity(s + start, i - start)) {
            for (Py_ssize_t k = start; k <= last_word; k++)
                s[k] = leet_letter(s[k]);
        }
    }
}

/* _join_letters on run s[0:n]: with both marks and plain spaces between letters, the rarer of
 * the two separates words; every other separator goes. */
static Py_ssize_t join_letters(const char *s, Py_ssize_t n, char *out) {
    Py_ssize_t spaces = 0, marks = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_marker(s[i]))
            marks++;
        else if (s[i] == ' ' && !(i > 0 && is_marker(s[i - 1])))
            spaces++;
    }
    int space_breaks = spaces && marks && marks >= spaces;
    int mark_breaks = spaces && marks && marks < spaces;
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (is_letter(s[i]))
            out[o++] = s[i];
        else if (space_breaks && s[i] == ' ' && i > 0 && i + 1 < n && is_letter(s[i - 1]) &&
                 is_letter(s[i + 1]))
            out[o++] = ' ';
        else if (mark_breaks && is_marker(s[i]) && i > 0 && is_letter(s[i - 1]))
            out[o++] = ' ';
    }
    return o;
}

/* normalise.SPACED_LETTERS: the most letters one run joins */
#define SPACED_LETTERS 64

/* segment.Segmenter.segment (set_segmenter): splits a joined run back into words. */
static PyObject *segmenter = NULL;

/* The joined run out[0:n] as the segmenter splits it, written over it; its new length, or
 * -1 with an exception set. It only adds spaces between letters and drops repeats, so it
 * never outgrows `room`, the length of the run as written (a separator between letters). */
static Py_ssize_t segment_run(char *out, Py_ssize_t n, Py_ssize_t room) {
    PyObject *run = PyUnicode_FromStringAndSize(out, n);
    if (!run)
        return -1;
    PyObject *split = PyObject_CallOneArg(segmenter, run);
    Py_DECREF(run);
    if (!split)
        return -1;
    if (!PyUnicode_Check(split) || !PyUnicode_IS_ASCII(split) ||
        PyUnicode_GET_LENGTH(split) > room) {
        Py_DECREF(split);
        PyErr_SetString(PyExc_ValueError, "the segmenter must return ASCII no longer than the run");
        return -1;
    }
    n = PyUnicode_GET_LENGTH(split);
    memcpy(out, PyUnicode_DATA(split), (size_t)n);
    Py_DECREF(split);
    return n;
}

/* _SPACED_ASCII: (?<!')\b[a-z](?:[.\-_*~] ?| )(?:[a-z](?:[.\-_*~] ?| )){0,62}[a-z]\b, replaced by
 * join_letters. The greedy repetition gives back letters until one stands before a word
 * edge, so a match ends at the last letter of the chain (of at most SPACED_LETTERS) that
 * does. */
static Py_ssize_t join_spaced(const char *s, Py_ssize_t n, char *out) {
    Py_ssize_t i = 0, o = 0;
    while (i < n) {
        if (is_letter(s[i]) && (i == 0 || (!is_word(s[i - 1]) && s[i - 1] != '\''))) {
            Py_ssize_t letter = i, end = -1;
            for (int letters = 1; letters < SPACED_LETTERS; letters++) {
                Py_ssize_t k = letter + 1;
                if (k < n && is_marker(s[k])) {
                    k++;
                    if (k < n && s[k] == ' ')
                        k++;
                } else if (k < n && s[k] == ' ') {
                    k++;
                } else {
                    break;
                }
                if (k >= n || !is_letter(s[k]))
                    break;
                letter = k;
                if (letter + 1 >= n || !is_word(s[letter + 1]))
                    end = letter + 1;
            }
            if (end > 0) {
                Py_ssize_t joined = join_letters(s + i, end - i, out + o);
                if (segmenter && (joined = segment_run(out + o, joined, end - i)) < 0)
                    return -1;
                o += joined;
                i = end;
                continue;
            }
        }
        out[o++] = s[i++];
    }
    return o;
}

/* _collapse_whitespace: each line's words joined by one space, empty lines dropped, lines
 * joined by "\n"; one space before and after when the text starts or ends with whitespace. */
static Py_ssize_t collapse_whitespace(const char *s, Py_ssize_t n, char *out) {
    if (n == 0)
        return 0;
    Py_ssize_t o = 0;
    int lines = 0;        /* lines written so far */
    int line_words = 0;   /* whether the current line has a word yet */
    int pending = 0;      /* whitespace seen since the last word of the line */
    if (is_space(s[0]))
        out[o++] = ' ';
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_line_break(c)) {
            if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
                i++;
            if (line_words)
                lines++;
            line_words = 0;
            pending = 0;
        } else if (is_space(c)) {
            pending = 1;
        } else {
            if (!line_words && lines)
                out[o++] = '\n';
            else if (line_words && pending)
                out[o++] = ' ';
            pending = 0;
            line_words = 1;
            out[o++] = c;
        }
    }
    if (line_words)
        lines++;
    if (!lines)
        return 1; /* " ": the text held only whitespace */
    if (is_space(s[n - 1]))
        out[o++] = ' ';
    return o;
}

/* _GLUE then _REPEATS, in one pass: "." "_" "~" between two letters is a space; three or
 * more of one letter are one. In place: what is written never runs ahead of what is read. */
static Py_ssize_t unglue_and_collapse_repeats(char *s, Py_ssize_t n) {
    Py_ssize_t o = 0, run = 0;
    char before = 0; /* the character read before this one, as it was */
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c == '.' || c == '_' || c == '~') && is_letter(before) && i + 1 < n &&
            is_letter(s[i + 1]))
            c = ' ';
        before = s[i];
        run = (o > 0 && s[o - 1] == c) ? run + 1 : 1;
        if (run <= 2 || !is_letter(c))
            s[o++] = c;
        if (run == 3 && is_letter(c))
            o--; /* "ccc": the second "c" goes too */
    }
    return o;
}

static PyObject *fold_ascii(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_ValueError, "fold_ascii takes ASCII text");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    /* join_spaced and collapse_whitespace never lengthen the text but for collapse's one
     * leading space: two buffers of n + 1 suffice. */
    char *a = PyMem_Malloc((size_t)n + 2), *b = PyMem_Malloc((size_t)n + 2);
    if (!a || !b) {
        PyMem_Free(a);
        PyMem_Free(b);
        return PyErr_NoMemory();
    }
    memcpy(a, PyUnicode_DATA(arg), (size_t)n);
    fold_leet(a, n);
    n = join_spaced(a, n, b);
    if (n < 0) {
        PyMem_Free(a);
        PyMem_Free(b);
        return NULL;
    }
    n = unglue_and_collapse_repeats(a, collapse_whitespace(b, n, a));
    PyObject *result = PyUnicode_FromStringAndSize(a, n);
    PyMem_Free(a);
    PyMem_Free(b);
    return result;
}

/* Appends the word s[start:end] to `words` when it is not empty; -1 on error. */
static int add_word(PyObject *words, const char *s, Py_ssize_t start, Py_ssize_t end) {
    if (end <= start)
        return 0;
    PyObject *word = PyUnicode_FromStringAndSize(s + start, end - start);
    if (!word)
        return -1;
    int failed = PyList_Append(words, word);
    Py_DECREF(word);
    return failed;
}

/* Appends `*words` to `sentences` when it holds a word, and starts a new one; -1 on error. */
static int end_sentence(PyObject *sentences, PyObject **words) {
    if (PyList_GET_SIZE(*words) == 0)
        return 0;
    int failed = PyList_Append(sentences, *words);
    Py_DECREF(*words);
    *words = failed ? NULL : PyList_New(0);
    return *words ? 0 : -1;
}

/* classifier.sentences_of on ASCII text: the words (runs of letters and digits) sentence by
 * sentence, a sentence ending at a line break and at a space after . ! ? or ;. */
static PyObject *ascii_sentences(PyObject *module, PyObject *arg) {
    (void)module;
    if (!PyUnicode_Check(arg) || !PyUnicode_IS_ASCII(arg)) {
        PyErr_SetString(PyExc_ValueError, "ascii_sentences takes ASCII text");
        return NULL;
    }
    const char *s = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg), start = 0;
    PyObject *sentences = PyList_New(0), *words = PyList_New(0);
    if (!sentences || !words)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (add_word(words, s, start, i) < 0)
            goto error;
        start = i + 1;
        if (c == '\n' || (c == ' ' && i > 0 && (s[i - 1] == '.' || s[i - 1] == '!' ||
                                                s[i - 1] == '?' || s[i - 1] == ';'))) {
            if (end_sentence(sentences, &words) < 0)
                goto error;
        }
    }
    if (add_word(words, s, start, n) < 0 || end_sentence(sentences, &words) < 0)
        goto error;
    Py_DECREF(words);
    return sentences;
error:
    Py_XDECREF(sentences);
    Py_XDECREF(words);
    return NULL;
}

/* Classifier.detect_sentences' numpy lines in one pass (classifier.py stays the definition, and
 * a test compares the two): the weight of every unit (units_of: each sentence of at most
 * `window` words, each two adjacent ones that fit together, every window of a longer one) as
 * its words' harassment weights plus those of the known word pairs inside it, in float32
 * prefix sums as numpy adds them. Returns (logit, start, end) of the first unit of the
 * largest weight, or None when there are no words. */
static PyObject *best_unit(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer codes_view, lengths_view, rows_view, keys_view, weights_view;
    Py_ssize_t window, tokens;
    if (!PyArg_ParseTuple(args, "y*y*ny*y*y*n", &codes_view, &lengths_view, &window,
                          &rows_view, &keys_view, &weights_view, &tokens))
        return NULL;
    PyObject *result = NULL;
    float *words = NULL, *inside = NULL;
    const long long *codes = codes_view.buf, *lengths = lengths_view.buf;
    const long long *keys = keys_view.buf;
    const float *rows = rows_view.buf, *weights = weights_view.buf;
    Py_ssize_t n = codes_view.len / 8, m = lengths_view.len / 8;
    Py_ssize_t row_count = rows_view.len / 4, key_count = keys_view.len / 8, total = 0;
    if (weights_view.len / 4 != key_count || window < 1 || tokens < 0) {
        PyErr_SetString(PyExc_ValueError, "best_unit: arrays do not fit");
        goto done;
    }
    for (Py_ssize_t j = 0; j < m; j++) {
        if (lengths[j] < 1) {
            PyErr_SetString(PyExc_ValueError, "best_unit: a sentence without words");
            goto done;
        }
        total += lengths[j];
    }
    if (total != n) {
        PyErr_SetString(PyExc_ValueError, "best_unit: lengths do not add up to the words");
        goto done;
    }
    if (n == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    words = PyMem_Malloc(sizeof(float) * (n + 1));
    inside = PyMem_Malloc(sizeof(float) * (n + 1));
    if (!words || !inside) {
        PyErr_NoMemory();
        goto done;
    }
    words[0] = inside[0] = 0.0f;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long code = codes[i];
        if (code < 0 || code >= row_count) {
            PyErr_SetString(PyExc_ValueError, "best_unit: a code outside the rows");
            goto done;
        }
        words[i + 1] = words[i] + rows[code];
        float pair = 0.0f;  /* the pair that ends at word i */
        if (i > 0 && codes[i - 1] < tokens && code < tokens && key_count) {
            long long key = codes[i - 1] * tokens + code;
            Py_ssize_t low = 0, high = key_count;
            while (low < high) {
                Py_ssize_t middle = low + (high - low) / 2;
                if (keys[middle] < key)
                    low = middle + 1;
                else
                    high = middle;
            }
            if (low < key_count && keys[low] == key)
                pair = weights[low];
        }
        inside[i + 1] = inside[i] + pair;
    }
    /* Units in units_of's order, so that a tie goes to the same unit as numpy's argmax. */
    float best = 0.0f;
    Py_ssize_t best_start = -1, best_end = -1;
#define CONSIDER(s, e) do {                                                          \
        float logit = (words[e] - words[s]) + (inside[e] - inside[(s) + 1]);         \
        if (best_start < 0 || logit > best) {                                        \
            best = logit; best_start = (s); best_end = (e);                          \
        }                                                                            \
    } while (0)
    Py_ssize_t start = 0;
    for (Py_ssize_t j = 0; j < m; start += lengths[j], j++)
        if (lengths[j] <= window)
            CONSIDER(start, start + lengths[j]);
    start = 0;
    for (Py_ssize_t j = 0; j + 1 < m; start += lengths[j], j++)
        if (lengths[j] <= window && lengths[j + 1] <= window &&
                lengths[j] + lengths[j + 1] <= window)
            CONSIDER(start, start + lengths[j] + lengths[j + 1]);
    start = 0;
    for (Py_ssize_t j = 0; j < m; start += lengths[j], j++)
        for (Py_ssize_t offset = 0; lengths[j] > window && offset <= lengths[j] - window;
                offset++)
            CONSIDER(start + offset, start + offset + window);
#undef CONSIDER
    result = Py_BuildValue("(dnn)", (double)best, best_start, best_end);
done:
    PyMem_Free(words);
    PyMem_Free(inside);
    PyBuffer_Release(&codes_view);
    PyBuffer_Release(&lengths_view);
    PyBuffer_Release(&rows_view);
    PyBuffer_Release(&keys_view);
    PyBuffer_Release(&weights_view);
    return result;
}

static PyObject *set_segmenter(PyObject *module, PyObject *arg) {
    (void)module;
    if (arg != Py_None && !PyCallable_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "set_segmenter takes a callable or None");
        return NULL;
    }
    Py_XDECREF(segmenter);
    segmenter = arg == Py_None ? NULL : Py_NewRef(arg);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"set_segmenter", set_segmenter, METH_O,
     "The function fold_ascii calls on each run of spaced letters it joins (None: none)."},
    {"ascii_sentences", ascii_sentences, METH_O,
     "classifier.sentences_of on ASCII text: the words of each sentence."},
    {"best_unit", best_unit, METH_VARARGS,
     "(logit, start, end) of the most harassing unit (classifier.detect_sentences)."},
    {"fold_ascii", fold_ascii, METH_O,
     "The last five normalisation steps on lower-case ASCII text (see normalise.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fold", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fold(void) {
    init_kinds();
    return PyModule_Create(&module);
}
