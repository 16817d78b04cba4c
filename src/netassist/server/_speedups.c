/* netassist._speedups: the compiled core of the WSGI server's common request.

Theory of operation
-------------------
The pure-Python path (server/protocol.py, wsgi.py, worker.py) is the reference. This module
takes over the request that is common, and only that: a whole request head that arrived alone,
in origin-form, with a method of the usual seven, HTTP/1.1 or 1.0, fields of plain ASCII, no
body, and a keep-alive connection; answered by a list of one bytes object under a head that
needs no decision of the Python path. Everything else is handed back to the Python path before
anything was done with it (the head's bytes go to ServerConnection.receive_data and
Worker._process, as Worker._read would do) or, once the app has run, with the request adopted
by the protocol object (ServerConnection.adopt) so the Python path goes on exactly where it
would have been. Errors are never answered here: a head the compiled parser does not accept is
the Python parser's to accept or refuse, so every status (400, 414, 431, 501, 505) comes from
one place.

The limits (--max-request-line, --max-header-bytes, --max-header-field, --max-header-count)
are checked here with the same comparisons as protocol.py: a head over any of them is handed
back, and the Python path answers it. Nothing is copied into a fixed-size buffer without a
bound check: the read buffer is as large as each read, the field table has FIELDS_MAX entries
and a head with more fields is handed back, and the response head is built in a bytes object
sized from the lengths it holds.

Corking. On one thread (Worker._serve sets Core.cork), a framed response is held back until
the poll's batch of events is done (the loop calls Core.flush() after it, and once before the
batch's last event), until Core.cork seconds have passed since the first one was held, or
until CORK_BYTES are held. A client then wakes once for several responses instead of once per
response: on a busy server that wake-up (an interrupt to an idle core) costs more than the
server's own work for a request. Nothing changes state meanwhile: the connection stays IN_APP
until its response is written (settle), and one whose connection was closed meanwhile is
dropped, never written to a descriptor that may be another's by then. An app that took the
cork window or longer makes the core write what it holds before the next app runs, and so
does a request for the Python path (hand_back, pure_read), whose app is not timed here.

Entry points: parse_head() (the protocol's seam: the compiled parser of a complete head),
frame_whole() (the response head and framing, for the differential tests), StartResponse (the
start_response callable, PEP 3333's rules), and Core, which the worker calls in place of
Worker._read for a connection that may carry a request.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#define RECV_SIZE 65536
#define FIELDS_MAX 128
#define KEY_CACHE 512
#define KEY_NAME_MAX 64

/* --- character classes (RFC 9110 5.6.2 tchar; RFC 3986 for the target) ----------------- */

static unsigned char TCHAR[256];
static unsigned char URLCHAR[256];  /* origin-form bytes taken here; others go to Python */
static unsigned char VCHAR[256];    /* field-value bytes taken here: VCHAR, SP, HTAB */
static unsigned char HOSTCHAR[256]; /* reg-name bytes taken here (a subset of RFC 3986's) */

static void
init_tables(void)
{
    const char *t = "!#$%&'*+-.^_`|~";
    for (int c = 0; c < 256; c++) {
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        TCHAR[c] = alnum || (c && strchr(t, c) != NULL);
        URLCHAR[c] = alnum || (c && strchr("-._~!$&'()*+,;=:@/?%", c) != NULL);
        VCHAR[c] = (c >= 0x20 && c <= 0x7e) || c == '\t';
        HOSTCHAR[c] = alnum || c == '-' || c == '.' || c == '_' || c == '~';
    }
}

static int
lower_eq(const char *p, Py_ssize_t n, const char *lit, Py_ssize_t litlen)
{
    if (n != litlen)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != lit[i])
            return 0;
    }
    return 1;
}
#define LOWER_EQ(p, n, lit) lower_eq((p), (n), lit, (Py_ssize_t)sizeof(lit) - 1)

/* --- the head ------------------------------------------------------------------------------ */

enum { M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_PATCH, M_OPTIONS, M_COUNT };
static const char *METHOD_NAMES[M_COUNT] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH",
                                            "OPTIONS"};
static PyObject *METHOD_STR[M_COUNT];

/* Fields defined as one value (protocol._SINGLETONS): a second one is the Python path's. */
static const char *SINGLETONS[] = {
    "authorization", "content-type", "date", "from", "if-modified-since", "if-range",
    "if-unmodified-since", "max-forwards", "proxy-authorization", "range", "referer",
    "user-agent", NULL};

typedef struct {
    Py_ssize_t name, name_len, value, value_len;
} Field;

typedef struct {
    int method;
    int http11;
    int keep_alive;
    int has_length; /* a Content-Length (of 0: bodies are the Python path's) */
    int proxy;      /* a proxy header (forwarded.py decides about those) */
    Py_ssize_t target, target_len;
    Py_ssize_t count;
    Field fields[FIELDS_MAX];
} Head;

typedef struct {
    Py_ssize_t max_request_line, max_header_bytes, max_header_field, max_header_count;
} Limits;

static int
host_ok(const char *p, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    if (n && p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++) {
            char c = p[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.'))
                return 0;
        }
        if (i == 1 || i >= n)
            return 0;
        i++;
    } else {
        while (i < n && HOSTCHAR[(unsigned char)p[i]])
            i++;
    }
    if (i < n) {
        if (p[i] != ':')
            return 0;
        for (i++; i < n; i++)
            if (p[i] < '0' || p[i] > '9')
                return 0;
    }
    return 1;
}

/* Parse the complete head p[0:n) (it ends with CRLF CRLF; its request line ends at
   line_end) if it is the common kind. 1: parsed into *h; 0: the Python path's. */
static int
parse(const char *p, Py_ssize_t n, Py_ssize_t line_end, const Limits *lim, Head *h)
{
    Py_ssize_t i = 0;
    if (line_end <= 0 || line_end > lim->max_request_line || n < line_end + 4 ||
        p[line_end] != '\r' || p[line_end + 1] != '\n')
        return 0;
    while (i < line_end && p[i] != ' ')
        i++;
    h->method = -1;
    for (int m = 0; m < M_COUNT; m++) {
        if ((Py_ssize_t)strlen(METHOD_NAMES[m]) == i && memcmp(p, METHOD_NAMES[m], i) == 0) {
            h->method = m;
            break;
        }
    }
    if (h->method < 0 || i >= line_end)
        return 0;
    i++;
    if (p[i] != '/')
        return 0;
    h->target = i;
    while (i < line_end && URLCHAR[(unsigned char)p[i]])
        i++;
    h->target_len = i - h->target;
    if (line_end - i != 9 || memcmp(p + i, " HTTP/1.", 8) != 0)
        return 0;
    if (p[line_end - 1] == '1')
        h->http11 = 1;
    else if (p[line_end - 1] == '0')
        h->http11 = 0;
    else
        return 0;

    int close = 0, keep_alive_token = 0, host = 0;
    unsigned singletons = 0;
    h->has_length = 0;
    h->proxy = 0;
    h->count = 0;
    Py_ssize_t pos = line_end + 2;
    Py_ssize_t last = n - 2; /* the empty line that ends the head */
    while (pos < last) {
        Py_ssize_t s = pos;
        while (pos < last && TCHAR[(unsigned char)p[pos]])
            pos++;
        Py_ssize_t name_len = pos - s;
        if (name_len == 0 || pos >= last || p[pos] != ':')
            return 0;
        pos++;
        while (pos < last && (p[pos] == ' ' || p[pos] == '\t'))
            pos++;
        Py_ssize_t v = pos;
        while (pos < last && VCHAR[(unsigned char)p[pos]])
            pos++;
        Py_ssize_t v_end = pos;
        if (pos + 1 >= n || p[pos] != '\r' || p[pos + 1] != '\n')
            return 0;
        while (v_end > v && (p[v_end - 1] == ' ' || p[v_end - 1] == '\t'))
            v_end--;
        if (v_end == v)
            return 0; /* an empty value */
        if (h->count >= FIELDS_MAX || h->count >= lim->max_header_count)
            return 0;
        Field *f = &h->fields[h->count++];
        f->name = s;
        f->name_len = name_len;
        f->value = v;
        f->value_len = v_end - v;
        pos += 2;

        const char *name = p + s, *value = p + v;
        Py_ssize_t vlen = v_end - v;
        switch (name_len) {
        case 4:
            if (LOWER_EQ(name, 4, "host")) {
                if (host || !host_ok(value, vlen))
                    return 0;
                host = 1;
                continue;
            }
            break;
        case 6:
            if (LOWER_EQ(name, 6, "expect"))
                return 0;
            break;
        case 7:
            if (LOWER_EQ(name, 7, "upgrade"))
                return 0;
            break;
        case 9:
            if (LOWER_EQ(name, 9, "forwarded"))
                h->proxy = 1;
            break;
        case 10:
            if (LOWER_EQ(name, 10, "connection")) {
                if (LOWER_EQ(value, vlen, "keep-alive"))
                    keep_alive_token = 1;
                else if (LOWER_EQ(value, vlen, "close"))
                    close = 1;
                else
                    return 0;
                continue;
            }
            break;
        case 14:
            if (LOWER_EQ(name, 14, "content-length")) {
                /* Zero only (a body is the Python path's), in at most 18 digits. */
                if (h->has_length || vlen > 18)
                    return 0;
                for (Py_ssize_t k = 0; k < vlen; k++)
                    if (value[k] != '0')
                        return 0;
                h->has_length = 1;
                continue;
            }
            break;
        case 15:
            if (LOWER_EQ(name, 15, "x-forwarded-for"))
                h->proxy = 1;
            break;
        case 17:
            if (LOWER_EQ(name, 17, "transfer-encoding"))
                return 0;
            if (LOWER_EQ(name, 17, "x-forwarded-proto"))
                h->proxy = 1;
            break;
        }
        for (int k = 0; SINGLETONS[k]; k++) {
            if (lower_eq(name, name_len, SINGLETONS[k], (Py_ssize_t)strlen(SINGLETONS[k]))) {
                if (singletons & (1u << k))
                    return 0;
                singletons |= 1u << k;
                break;
            }
        }
    }
    if (pos != last)
        return 0;
    if (h->http11 && !host)
        return 0;
    h->keep_alive = !close && (h->http11 || keep_alive_token);
    return 1;
}

/* --- the response -------------------------------------------------------------------------- */

static char date_text[40];
static Py_ssize_t date_len;
static time_t date_second = -1;

static void
refresh_date(void)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec == date_second)
        return;
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    date_len = snprintf(date_text, sizeof date_text, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                        days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (date_len < 0 || date_len >= (Py_ssize_t)sizeof date_text)
        date_len = 0;
    date_second = now.tv_sec;
}

static const char *HOP_BY_HOP[] = {"keep-alive", "proxy-authenticate", "proxy-authorization",
                                   "te", "trailer", "transfer-encoding", "upgrade", NULL};

/* What the head needs, worked out from the app's status and headers. */
typedef struct {
    Py_ssize_t head_len; /* bytes of the head, the final CRLF included */
    int no_body;
    int chunked;
    int has_date, has_server;
} Plan;

/* 1: the head is the common kind and *plan says how to write it; 0: the Python path's
   (which also answers 500 for what is wrong). Only ASCII str objects are read. */
static int
plan_head(PyObject *status, PyObject *headers, int method_head, int http11, Py_ssize_t body_len,
          Py_ssize_t server_len, Plan *plan)
{
    if (!PyUnicode_CheckExact(status) || !PyUnicode_IS_ASCII(status) ||
        !PyList_CheckExact(headers))
        return 0;
    Py_ssize_t slen = PyUnicode_GET_LENGTH(status);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(status);
    if (slen < 4 || s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '9' || s[2] < '0' ||
        s[2] > '9' || s[3] != ' ')
        return 0;
    for (Py_ssize_t i = 4; i < slen; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == 0)
            return 0;
    int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    Py_ssize_t length = 9 + slen + 2; /* "HTTP/1.1 " status CRLF */
    long long declared = -1;
    plan->has_date = plan->has_server = 0;
    Py_ssize_t count = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2)
            return 0;
        PyObject *name = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_IS_ASCII(name) ||
            !PyUnicode_CheckExact(value) || !PyUnicode_IS_ASCII(value))
            return 0;
        Py_ssize_t nlen = PyUnicode_GET_LENGTH(name), vlen = PyUnicode_GET_LENGTH(value);
        const char *n = (const char *)PyUnicode_1BYTE_DATA(name);
        const char *v = (const char *)PyUnicode_1BYTE_DATA(value);
        if (nlen == 0)
            return 0;
        for (Py_ssize_t k = 0; k < nlen; k++)
            if (!TCHAR[(unsigned char)n[k]])
                return 0;
        for (Py_ssize_t k = 0; k < vlen; k++)
            if (v[k] == '\r' || v[k] == '\n' || v[k] == 0)
                return 0;
        if (LOWER_EQ(n, nlen, "content-length")) {
            if (declared >= 0 || vlen == 0 || vlen > 18)
                return 0;
            declared = 0;
            for (Py_ssize_t k = 0; k < vlen; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return 0;
                declared = declared * 10 + (v[k] - '0');
            }
        } else if (LOWER_EQ(n, nlen, "connection")) {
            return 0;
        } else if (LOWER_EQ(n, nlen, "date")) {
            plan->has_date = 1;
        } else if (LOWER_EQ(n, nlen, "server")) {
            plan->has_server = 1;
        } else {
            for (int k = 0; HOP_BY_HOP[k]; k++)
                if (lower_eq(n, nlen, HOP_BY_HOP[k], (Py_ssize_t)strlen(HOP_BY_HOP[k])))
                    return 0;
        }
        length += nlen + 2 + vlen + 2;
    }
    plan->no_body = method_head || code == 204 || code == 304;
    plan->chunked = 0;
    if (!plan->no_body) {
        if (declared >= 0) {
            if (declared != body_len)
                return 0; /* more or less than declared: the Python path closes */
        } else if (http11) {
            plan->chunked = 1;
            length += 28; /* Transfer-Encoding: chunked CRLF */
        } else {
            return 0; /* delimited by the close */
        }
    }
    if (!plan->has_date)
        length += 6 + date_len + 2;
    if (!plan->has_server)
        length += 8 + server_len + 2;
    if (!http11)
        length += 24; /* Connection: keep-alive CRLF */
    plan->head_len = length + 2;
    return 1;
}

static char *
put(char *o, const char *s, Py_ssize_t n)
{
    memcpy(o, s, n);
    return o + n;
}
#define PUT_LIT(o, lit) put((o), lit, (Py_ssize_t)sizeof(lit) - 1)

/* Writes the head planned by plan_head into out (plan->head_len bytes). */
static void
write_head(char *out, PyObject *status, PyObject *headers, int http11, const Plan *plan,
           const char *server, Py_ssize_t server_len)
{
    char *o = PUT_LIT(out, "HTTP/1.1 ");
    o = put(o, (const char *)PyUnicode_1BYTE_DATA(status), PyUnicode_GET_LENGTH(status));
    o = PUT_LIT(o, "\r\n");
    Py_ssize_t count = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        PyObject *name = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        o = put(o, (const char *)PyUnicode_1BYTE_DATA(name), PyUnicode_GET_LENGTH(name));
        o = PUT_LIT(o, ": ");
        o = put(o, (const char *)PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value));
        o = PUT_LIT(o, "\r\n");
    }
    if (plan->chunked)
        o = PUT_LIT(o, "Transfer-Encoding: chunked\r\n");
    if (!plan->has_date) {
        o = PUT_LIT(o, "Date: ");
        o = put(o, date_text, date_len);
        o = PUT_LIT(o, "\r\n");
    }
    if (!plan->has_server) {
        o = PUT_LIT(o, "Server: ");
        o = put(o, server, server_len);
        o = PUT_LIT(o, "\r\n");
    }
    if (!http11)
        o = PUT_LIT(o, "Connection: keep-alive\r\n");
    PUT_LIT(o, "\r\n");
}

/* The bytes that frame a body: a chunk-size line before it (into pre, returned length) and
   the last chunk after it. */
static Py_ssize_t
chunk_prefix(char *pre, Py_ssize_t body_len)
{
    if (body_len == 0)
        return 0;
    return snprintf(pre, 24, "%zx\r\n", (size_t)body_len);
}

/* --- StartResponse ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *status;
    PyObject *headers;
    PyObject *write;
    char headers_sent;
} StartResponse;

static PyTypeObject StartResponseType;

static int
sr_init(StartResponse *self, PyObject *args, PyObject *kwds)
{
    PyObject *write;
    static char *kwlist[] = {"write", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:StartResponse", kwlist, &write))
        return -1;
    Py_INCREF(write);
    Py_XSETREF(self->write, write);
    Py_XSETREF(self->status, Py_NewRef(Py_None));
    Py_XSETREF(self->headers, Py_NewRef(Py_None));
    self->headers_sent = 0;
    return 0;
}

static PyObject *
sr_call(StartResponse *self, PyObject *args, PyObject *kwds)
{
    PyObject *status, *headers, *exc_info = Py_None;
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    Py_ssize_t given_args = PyTuple_GET_SIZE(args);
    if (kwds == NULL && (given_args == 2 || given_args == 3)) { /* the usual call, unparsed */
        status = PyTuple_GET_ITEM(args, 0);
        headers = PyTuple_GET_ITEM(args, 1);
        if (given_args == 3)
            exc_info = PyTuple_GET_ITEM(args, 2);
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response", kwlist, &status,
                                            &headers, &exc_info))
        return NULL;
    int given = PyObject_IsTrue(exc_info);
    if (given < 0)
        return NULL;
    if (given) {
        if (self->headers_sent) {
            PyObject *value = PySequence_GetItem(exc_info, 1);
            PyObject *tb = value ? PySequence_GetItem(exc_info, 2) : NULL;
            if (tb != NULL) {
                PyObject *raised = PyObject_CallMethod(value, "with_traceback", "O", tb);
                if (raised != NULL) {
                    PyErr_SetObject((PyObject *)Py_TYPE(raised), raised);
                    Py_DECREF(raised);
                }
            }
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
    } else if (self->status != NULL && self->status != Py_None) {
        PyErr_SetString(PyExc_AssertionError, "start_response called twice without exc_info");
        return NULL;
    }
    if (!PyUnicode_CheckExact(status) || !PyList_CheckExact(headers)) {
        PyErr_SetString(PyExc_TypeError,
                        "start_response takes a str status and a list of (str, str) headers");
        return NULL;
    }
    Py_INCREF(status);
    Py_XSETREF(self->status, status);
    Py_INCREF(headers);
    Py_XSETREF(self->headers, headers);
    return Py_NewRef(self->write ? self->write : Py_None);
}

static int
sr_traverse(StartResponse *self, visitproc visit, void *arg)
{
    Py_VISIT(self->status);
    Py_VISIT(self->headers);
    Py_VISIT(self->write);
    return 0;
}

static int
sr_clear(StartResponse *self)
{
    Py_CLEAR(self->status);
    Py_CLEAR(self->headers);
    Py_CLEAR(self->write);
    return 0;
}

static void
sr_dealloc(StartResponse *self)
{
    PyObject_GC_UnTrack(self);
    sr_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef sr_members[] = {
    {"status", T_OBJECT, offsetof(StartResponse, status), 0, "the status given, or None"},
    {"headers", T_OBJECT, offsetof(StartResponse, headers), 0, "the headers given, or None"},
    {"write", T_OBJECT, offsetof(StartResponse, write), 0, "the write() callable"},
    {"headers_sent", T_BOOL, offsetof(StartResponse, headers_sent), 0,
     "whether the head has gone out"},
    {NULL}};

static PyTypeObject StartResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netassist._speedups.StartResponse",
    .tp_basicsize = sizeof(StartResponse),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The start_response callable of one request, with PEP 3333's exc_info rules "
              "(wsgi.StartResponse compiled).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)sr_init,
    .tp_call = (ternaryfunc)sr_call,
    .tp_traverse = (traverseproc)sr_traverse,
    .tp_clear = (inquiry)sr_clear,
    .tp_dealloc = (destructor)sr_dealloc,
    .tp_members = sr_members,
};

/* --- Python objects of a parsed head ------------------------------------------------------- */

static PyObject *
ascii_str(const char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_New(n, 127);
    if (s != NULL)
        memcpy(PyUnicode_1BYTE_DATA(s), p, n);
    return s;
}

static PyObject *S_11, *S_10, *S_HTTP11, *S_HTTP10, *S_ZERO, *ZERO_INT;

/* The 8 arguments of protocol.Request for a parsed head. */
static PyObject *
request_args(const char *p, const Head *h)
{
    PyObject *headers = PyList_New(h->count);
    if (headers == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < h->count; i++) {
        const Field *f = &h->fields[i];
        PyObject *pair = Py_BuildValue("(y#y#)", p + f->name, f->name_len, p + f->value,
                                       f->value_len);
        if (pair == NULL) {
            Py_DECREF(headers);
            return NULL;
        }
        PyList_SET_ITEM(headers, i, pair);
    }
    return Py_BuildValue("(Oy#ONOOOO)", METHOD_STR[h->method], p + h->target, h->target_len,
                         h->http11 ? S_11 : S_10, headers, h->keep_alive ? Py_True : Py_False,
                         h->has_length ? ZERO_INT : Py_None, Py_False, Py_False);
}

/* --- environ keys ---------------------------------------------------------------------------- */

/* Header name as received -> environ key (a new reference; None: not in the environ), learnt
   once per spelling in a table of KEY_CACHE slots (a name that hashes onto a taken slot
   replaces it: bounded, whatever names clients invent). As wsgi._environ_key: a name with
   "_" is dropped (X_Forwarded_For would land on X-Forwarded-For's key), Content-Type is
   CONTENT_TYPE, Content-Length is set from what was received. */
typedef struct {
    Py_ssize_t len;
    char name[KEY_NAME_MAX];
    PyObject *key;
} KeySlot;
static KeySlot key_cache[KEY_CACHE];

static PyObject *
environ_key(const char *name, Py_ssize_t n)
{
    unsigned h = 2166136261u;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    KeySlot *slot = &key_cache[h % KEY_CACHE];
    if (slot->key != NULL && slot->len == n && memcmp(slot->name, name, n) == 0)
        return Py_NewRef(slot->key);
    PyObject *key;
    if (memchr(name, '_', n) != NULL || LOWER_EQ(name, n, "content-length")) {
        key = Py_NewRef(Py_None);
    } else if (LOWER_EQ(name, n, "content-type")) {
        key = PyUnicode_InternFromString("CONTENT_TYPE");
    } else {
        key = PyUnicode_New(n + 5, 127);
        if (key == NULL)
            return NULL;
        char *k = (char *)PyUnicode_1BYTE_DATA(key);
        memcpy(k, "HTTP_", 5);
        for (Py_ssize_t i = 0; i < n; i++) {
            char c = name[i];
            k[5 + i] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c;
        }
        PyUnicode_InternInPlace(&key);
    }
    if (key != NULL && n <= KEY_NAME_MAX) {
        memcpy(slot->name, name, n);
        slot->len = n;
        Py_XSETREF(slot->key, Py_NewRef(key));
    }
    return key;
}

static PyObject *K_PATH_INFO, *K_QUERY_STRING, *K_REQUEST_METHOD, *K_RAW_URI, *K_REQUEST_URI,
    *K_SERVER_PROTOCOL, *K_INPUT, *K_CONTENT_LENGTH, *K_HTTP_COOKIE, *S_COMMA, *S_SEMI;

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* PATH_INFO: the path percent-decoded as urllib.parse.unquote_to_bytes does (a "%" without two
   hex digits stays as it is), then read as latin-1 (PEP 3333). */
static PyObject *
path_info(const char *p, Py_ssize_t n)
{
    if (memchr(p, '%', n) == NULL)
        return ascii_str(p, n);
    char small[512];
    char *out = n <= (Py_ssize_t)sizeof small ? small : PyMem_Malloc(n);
    if (out == NULL)
        return PyErr_NoMemory();
    Py_ssize_t o = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int hi, lo;
        if (p[i] == '%' && i + 2 < n &&
            (hi = hexval(p[i + 1])) >= 0 && (lo = hexval(p[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    PyObject *s = PyUnicode_DecodeLatin1(out, o, NULL);
    if (out != small)
        PyMem_Free(out);
    return s;
}

static int
set_new(PyObject *d, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int r = PyDict_SetItem(d, key, value);
    Py_DECREF(value);
    return r;
}

/* The environ of a parsed head from the connection's base, as EnvironBuilder.build makes it
   for an origin-form target without SCRIPT_NAME; raw_uri gets a new reference to RAW_URI. */
static PyObject *
build_environ(PyObject *base, const char *p, const Head *h, PyObject *empty_input,
              PyObject **raw_uri)
{
    PyObject *env = PyDict_Copy(base);
    if (env == NULL)
        return NULL;
    const char *target = p + h->target;
    const char *q = memchr(target, '?', h->target_len);
    Py_ssize_t path_len = q ? q - target : h->target_len;
    PyObject *uri = ascii_str(target, h->target_len);
    if (uri == NULL)
        goto fail;
    if (set_new(env, K_PATH_INFO, path_info(target, path_len)) < 0 ||
        set_new(env, K_QUERY_STRING,
                q ? ascii_str(q + 1, h->target_len - path_len - 1) : ascii_str("", 0)) < 0 ||
        PyDict_SetItem(env, K_REQUEST_METHOD, METHOD_STR[h->method]) < 0 ||
        PyDict_SetItem(env, K_RAW_URI, uri) < 0 || PyDict_SetItem(env, K_REQUEST_URI, uri) < 0 ||
        PyDict_SetItem(env, K_SERVER_PROTOCOL, h->http11 ? S_HTTP11 : S_HTTP10) < 0 ||
        PyDict_SetItem(env, K_INPUT, empty_input) < 0)
        goto fail;
    if (h->has_length && PyDict_SetItem(env, K_CONTENT_LENGTH, S_ZERO) < 0)
        goto fail;
    for (Py_ssize_t i = 0; i < h->count; i++) {
        const Field *f = &h->fields[i];
        PyObject *key = environ_key(p + f->name, f->name_len);
        if (key == NULL)
            goto fail;
        if (key == Py_None) {
            Py_DECREF(key);
            continue;
        }
        PyObject *value = ascii_str(p + f->value, f->value_len);
        PyObject *old = value ? PyDict_GetItemWithError(env, key) : NULL;
        if (old != NULL) {
            PyObject *joined = PyUnicode_Concat(old, key == K_HTTP_COOKIE ? S_SEMI : S_COMMA);
            if (joined != NULL)
                PyUnicode_Append(&joined, value);
            Py_DECREF(value);
            value = joined;
        }
        if (PyErr_Occurred() || set_new(env, key, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(key);
            goto fail;
        }
        Py_DECREF(key);
    }
    *raw_uri = uri;
    return env;
fail:
    Py_XDECREF(uri);
    Py_DECREF(env);
    return NULL;
}

/* --- module functions ---------------------------------------------------------------------- */

static int
read_limits(PyObject *limits, Limits *lim)
{
    if (!PyArg_ParseTuple(limits, "nnnn", &lim->max_request_line, &lim->max_header_bytes,
                          &lim->max_header_field, &lim->max_header_count))
        return -1;
    return 0;
}

static PyObject *
parse_head(PyObject *module, PyObject *args)
{
    const char *p;
    Py_ssize_t n, line_end;
    PyObject *limits;
    Limits lim;
    Head h;
    if (!PyArg_ParseTuple(args, "y#nO!:parse_head", &p, &n, &line_end, &PyTuple_Type, &limits) ||
        read_limits(limits, &lim) < 0)
        return NULL;
    if (n < 4 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0 || !parse(p, n, line_end, &lim, &h))
        Py_RETURN_NONE;
    return request_args(p, &h);
}

static PyObject *
frame_whole(PyObject *module, PyObject *args)
{
    PyObject *status, *headers, *server;
    Py_buffer body;
    int method_head, http11;
    if (!PyArg_ParseTuple(args, "OOy*ppU:frame_whole", &status, &headers, &body, &method_head,
                          &http11, &server))
        return NULL;
    PyObject *result = NULL;
    Plan plan;
    Py_ssize_t server_len;
    const char *server_text = PyUnicode_AsUTF8AndSize(server, &server_len);
    if (server_text == NULL)
        goto done;
    refresh_date();
    if (!PyUnicode_IS_ASCII(server)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (!plan_head(status, headers, method_head, http11, body.len, server_len, &plan)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    char pre[24];
    Py_ssize_t pre_len = plan.chunked ? chunk_prefix(pre, body.len) : 0;
    Py_ssize_t body_len = plan.no_body ? 0 : body.len;
    Py_ssize_t post_len = plan.chunked ? (body.len ? 7 : 5) : 0;
    result = PyBytes_FromStringAndSize(NULL, plan.head_len + pre_len + body_len + post_len);
    if (result == NULL)
        goto done;
    char *o = PyBytes_AS_STRING(result);
    write_head(o, status, headers, http11, &plan, server_text, server_len);
    o += plan.head_len;
    o = put(o, pre, pre_len);
    o = put(o, body.buf, body_len);
    if (post_len)
        put(o, body.len ? "\r\n0\r\n\r\n" : "0\r\n\r\n", post_len);
done:
    PyBuffer_Release(&body);
    return result;
}

/* --- Core: the worker's read of a connection, the common request done here ------------------ */

/* worker.py's connection phases (READ_HEAD, READ_BODY, IN_APP, WRITE, LINGER, HANDSHAKE). */
enum { READ_HEAD = 0, IN_APP = 2, WRITE = 3 };

static PyObject *A_phase, *A_proto, *A_fd, *A_environ, *A_start, *A_builder, *A_script_name,
    *A_deadline, *A_armed, *A_request, *A_result, *A_out, *A_buffer, *A_state, *A_closing,
    *A_adopt, *A_receive_data, *A_closed, *PHASE_READ_HEAD, *PHASE_IN_APP, *PHASE_WRITE, *NEVER;

/* A response framed here, written now or held back until the poll's batch ends (Core.flush).
   Holds a reference to each object. */
typedef struct {
    PyObject *conn;
    PyObject *result; /* what the app returned */
    PyObject *head;   /* the request's head, for adopt() */
    PyObject *out;    /* bytes: the response head, with a small body and its framing */
    PyObject *body;   /* a body too big to copy into out, or NULL */
    const char *tail; /* the chunked ending after a body not in out, or NULL */
    Py_ssize_t tail_len;
    int fd;
    int iterable; /* result came from take(): close it as _finish would */
} Pending;

/* A body up to this size is copied after the head: one buffer to write, one to hold. */
#define COPY_BODY 4096
/* Held-back responses are written once they hold this many bytes, whatever the time. */
#define CORK_BYTES (256 * 1024)

typedef struct {
    PyObject_HEAD
    PyObject *worker;
    PyObject *app;
    PyObject *empty_input;
    PyObject *request_type;
    PyObject *in_mask;
    PyObject *pure_read; /* Worker._read, bound */
    PyObject *arm, *close, *process, *answer, *app_failed, *pump, *finish, *resume;
    PyObject *close_result;
    PyObject *file_wrapper; /* wsgi.FileWrapper: the Python path sends those */
    PyObject *running; /* [(conn, method, raw_uri, started, head)] whose app runs now */
    PyObject *count;   /* called before each app call (--max-requests), or NULL */
    PyObject *flush_failed; /* Worker._flush_failed(conn, exc): a held response could not go */
    /* Corking: a poll's batch of responses written together at its end (see Core.flush). */
    double cork;  /* the longest a response is held back, in seconds; 0: written at once */
    double held_since;
    int flushing;
    int slow_app;       /* the last app held for took the cork window or longer */
    double app_started; /* when the last app was called */
    Pending *held;
    Py_ssize_t held_count, held_cap, held_bytes;
    Limits lim;
    Py_ssize_t short_head;
    double keep_alive;
    char server[256];
    Py_ssize_t server_len;
} Core;

static char read_buffer[RECV_SIZE]; /* used only while the GIL is held, never across a call */

/* The worker's Connection keeps its fields in __slots__: their offsets are looked up once and
   the fields then read and written in place, as the slot descriptors would (a generic
   attribute lookup per field costs more than the rest of what is done with it). Any other
   type, or a field that is not a plain slot, takes the generic way. */
#define SLOTS_MAX 16
static PyTypeObject *slot_type;
static struct {
    PyObject *name;
    Py_ssize_t offset; /* 0: not a plain slot */
} slots[SLOTS_MAX];
static int slot_count;

static Py_ssize_t
slot_offset(PyObject *o, PyObject *name)
{
    PyTypeObject *type = Py_TYPE(o);
    if (slot_type == NULL)
        slot_type = (PyTypeObject *)Py_NewRef(type);
    if (type != slot_type)
        return 0;
    for (int i = 0; i < slot_count; i++)
        if (slots[i].name == name)
            return slots[i].offset;
    Py_ssize_t offset = 0;
    PyObject *descr = _PyType_Lookup(type, name);
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READONLY))
            offset = member->offset;
    }
    if (slot_count < SLOTS_MAX) {
        slots[slot_count].name = name;
        slots[slot_count++].offset = offset;
    }
    return offset;
}

static PyObject *
get_field(PyObject *o, PyObject *name)
{
    Py_ssize_t offset = slot_offset(o, name);
    if (offset > 0) {
        PyObject *value = *(PyObject **)((char *)o + offset);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(o, name);
}

static int
set_field(PyObject *o, PyObject *name, PyObject *value)
{
    Py_ssize_t offset = slot_offset(o, name);
    if (offset <= 0)
        return PyObject_SetAttr(o, name, value);
    PyObject **field = (PyObject **)((char *)o + offset);
    Py_XSETREF(*field, Py_NewRef(value));
    return 0;
}

static double
monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

static PyObject *
call1(PyObject *f, PyObject *a)
{
    return PyObject_CallOneArg(f, a);
}

/* Call and drop the result; -1 with an exception. */
static int
run1(PyObject *f, PyObject *a)
{
    PyObject *r = call1(f, a);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

static int
run2(PyObject *f, PyObject *a, PyObject *b)
{
    PyObject *r = PyObject_CallFunctionObjArgs(f, a, b, NULL);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* The exception being raised, as one object with its traceback (a new reference, NULL only
   if none is set); the error indicator is cleared. */
static PyObject *
raised(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

static int
set_float(PyObject *o, PyObject *name, double v)
{
    PyObject *f = PyFloat_FromDouble(v);
    if (f == NULL)
        return -1;
    int r = set_field(o, name, f);
    Py_DECREF(f);
    return r;
}

/* Make the Python path own the request parsed from head: conn.request and the protocol's state
   (ServerConnection.adopt), as if protocol.py had parsed it; responded says its whole response
   went out already. */
static int
adopt(Core *self, PyObject *conn, PyObject *head, int responded)
{
    const char *p = PyBytes_AS_STRING(head);
    Py_ssize_t n = PyBytes_GET_SIZE(head);
    const char *crlf = memchr(p, '\r', n);
    Head h;
    if (crlf == NULL || !parse(p, n, crlf - p, &self->lim, &h)) {
        PyErr_SetString(PyExc_RuntimeError, "a head parsed once no longer parses");
        return -1;
    }
    PyObject *args = request_args(p, &h);
    PyObject *request = args ? PyObject_Call(self->request_type, args, NULL) : NULL;
    Py_XDECREF(args);
    if (request == NULL)
        return -1;
    PyObject *proto = get_field(conn, A_proto);
    PyObject *r = proto ? PyObject_CallMethodObjArgs(proto, A_adopt, request,
                                                     responded ? Py_True : Py_False, NULL)
                        : NULL;
    Py_XDECREF(proto);
    Py_XDECREF(r);
    int ok = r != NULL ? set_field(conn, A_request, request) : -1;
    Py_DECREF(request);
    return ok;
}

static int
core_init(Core *self, PyObject *args, PyObject *kwds)
{
    PyObject *worker, *app, *limits, *server, *empty_input, *request_type, *in_mask, *pure_read;
    PyObject *file_wrapper;
    double keep_alive;
    if (!PyArg_ParseTuple(args, "OOO!UdOOOOO:Core", &worker, &app, &PyTuple_Type, &limits,
                          &server, &keep_alive, &empty_input, &request_type, &file_wrapper,
                          &in_mask, &pure_read) ||
        read_limits(limits, &self->lim) < 0)
        return -1;
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(server, &len);
    if (text == NULL)
        return -1;
    if (!PyUnicode_IS_ASCII(server) || len >= (Py_ssize_t)sizeof self->server) {
        PyErr_SetString(PyExc_ValueError, "the compiled core takes an ASCII server name");
        return -1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (text[i] == '\r' || text[i] == '\n' || text[i] == 0) {
            PyErr_SetString(PyExc_ValueError, "the server name holds a line break");
            return -1;
        }
    }
    memcpy(self->server, text, len);
    self->server_len = len;
    self->keep_alive = keep_alive;
    Py_ssize_t smaller = self->lim.max_header_bytes < self->lim.max_header_field
                             ? self->lim.max_header_bytes
                             : self->lim.max_header_field;
    self->short_head = smaller + 4; /* as ServerConnection._short_head */
    Py_XSETREF(self->worker, Py_NewRef(worker));
    Py_XSETREF(self->app, Py_NewRef(app));
    Py_XSETREF(self->empty_input, Py_NewRef(empty_input));
    Py_XSETREF(self->request_type, Py_NewRef(request_type));
    Py_XSETREF(self->file_wrapper, Py_NewRef(file_wrapper));
    Py_XSETREF(self->in_mask, Py_NewRef(in_mask));
    Py_XSETREF(self->pure_read, Py_NewRef(pure_read));
    Py_XSETREF(self->running, PyList_New(0));
#define METHOD(field, name)                                                                    \
    Py_XSETREF(self->field, PyObject_GetAttrString(worker, name));                            \
    if (self->field == NULL)                                                                   \
        return -1;
    METHOD(arm, "_arm");
    METHOD(close, "_close");
    METHOD(process, "_process");
    METHOD(answer, "_answer");
    METHOD(app_failed, "_app_failed");
    METHOD(pump, "_pump");
    METHOD(finish, "_finish");
    METHOD(resume, "_resume");
    METHOD(close_result, "_close_result");
    METHOD(flush_failed, "_flush_failed");
#undef METHOD
    return self->running ? 0 : -1;
}

static int flush_held(Core *self);

/* Not the common request: what Worker._read does with the bytes it read. */
static PyObject *
hand_back(PyObject *conn, PyObject *proto, Core *self, const char *p, Py_ssize_t n)
{
    PyObject *data = PyBytes_FromStringAndSize(p, n);
    if (data == NULL)
        return NULL;
    /* The Python path's app may be slow (a body to read, a stream to send) and its time is
       not measured: what is held goes out first. */
    if (self->held_count && flush_held(self) < 0) {
        Py_DECREF(data);
        return NULL;
    }
    PyObject *r = PyObject_CallMethodOneArg(proto, A_receive_data, data);
    Py_DECREF(data);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    if (run1(self->process, conn) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static Py_ssize_t
long_attr(PyObject *o, PyObject *name)
{
    PyObject *v = PyObject_GetAttr(o, name);
    if (v == NULL)
        return -1;
    Py_ssize_t r = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return r;
}

static Py_ssize_t
long_field(PyObject *o, PyObject *name)
{
    PyObject *v = get_field(o, name);
    if (v == NULL)
        return -1;
    Py_ssize_t r = PyLong_AsSsize_t(v);
    Py_DECREF(v);
    return r;
}

static void
drop_running(Core *self, PyObject *entry)
{
    Py_ssize_t n = PyList_GET_SIZE(self->running);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(self->running, i) == entry) {
            PyList_SetSlice(self->running, i, i + 1, NULL);
            return;
        }
    }
}

/* The response went out in part: the Python path sends the rest and finishes. */
static int
send_rest(Core *self, Pending *p, struct iovec *iov, int iovcnt, Py_ssize_t sent)
{
    Py_ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    PyObject *rest = PyBytes_FromStringAndSize(NULL, total - sent);
    if (rest == NULL)
        return -1;
    char *o = PyBytes_AS_STRING(rest);
    for (int i = 0; i < iovcnt; i++) {
        Py_ssize_t len = iov[i].iov_len, skip = sent < len ? sent : len;
        o = put(o, (const char *)iov[i].iov_base + skip, len - skip);
        sent -= skip;
    }
    int ok = adopt(self, p->conn, p->head, 1) == 0 && set_field(p->conn, A_result, p->result) == 0 &&
             set_field(p->conn, A_out, rest) == 0 &&
             set_field(p->conn, A_phase, PHASE_WRITE) == 0 && run1(self->pump, p->conn) == 0;
    Py_DECREF(rest);
    return ok ? 0 : -1;
}

static void
release(Pending *p)
{
    Py_CLEAR(p->conn);
    Py_CLEAR(p->result);
    Py_CLEAR(p->head);
    Py_CLEAR(p->out);
    Py_CLEAR(p->body);
}

/* After the whole response went out: what Worker._finish does for a common request. */
static int
finish(Core *self, Pending *p)
{
    PyObject *conn = p->conn;
    PyObject *closing = PyObject_GetAttr(self->worker, A_closing);
    if (closing == NULL)
        return -1;
    int stop = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (stop) /* the server stops: the Python path closes the connection */
        return stop < 0 || adopt(self, conn, p->head, 1) < 0 ||
                       set_field(conn, A_result, p->result) < 0 || run1(self->finish, conn) < 0
                   ? -1
                   : 0;
    if (p->iterable &&
        (set_field(conn, A_result, p->result) < 0 || run1(self->close_result, conn) < 0))
        return -1; /* as _finish closes what the app returned */
    if (set_field(conn, A_phase, PHASE_READ_HEAD) < 0 ||
        set_float(conn, A_deadline, monotonic() + self->keep_alive) < 0)
        return -1;
    PyObject *armed = get_field(conn, A_armed);
    if (armed == NULL)
        return -1;
    int same = PyObject_RichCompareBool(armed, self->in_mask, Py_EQ);
    Py_DECREF(armed);
    return same < 0 || (!same && run2(self->arm, conn, self->in_mask) < 0) ? -1 : 0;
}

/* Write a framed response and finish its request, or hand what is left to the Python path;
   the entry's references are dropped, whatever happens. */
static int
settle(Core *self, Pending *p)
{
    struct iovec iov[3];
    int iovcnt = 0, ok = -1;
    iov[iovcnt].iov_base = PyBytes_AS_STRING(p->out);
    iov[iovcnt++].iov_len = PyBytes_GET_SIZE(p->out);
    if (p->body != NULL) {
        iov[iovcnt].iov_base = PyBytes_AS_STRING(p->body);
        iov[iovcnt++].iov_len = PyBytes_GET_SIZE(p->body);
    }
    if (p->tail != NULL) {
        iov[iovcnt].iov_base = (void *)p->tail;
        iov[iovcnt++].iov_len = p->tail_len;
    }
    Py_ssize_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    Py_ssize_t sent = iovcnt == 1 ? write(p->fd, iov[0].iov_base, total)
                                  : writev(p->fd, iov, iovcnt);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        ok = set_field(p->conn, A_result, p->result) == 0 ? run1(self->close, p->conn) : -1;
    else if (sent < total)
        ok = send_rest(self, p, iov, iovcnt, sent < 0 ? 0 : sent);
    else
        ok = finish(self, p);
    release(p);
    return ok;
}

/* Settle every held response. A failure costs its connection only (Worker._flush_failed
   logs it and closes); -1 only for an exception that is not an Exception (the rest stay
   held for the next flush). */
static int
flush_held(Core *self)
{
    Py_ssize_t i = 0, count = self->held_count;
    int r = 0;
    self->flushing = 1;
    for (; i < count; i++) {
        Pending *p = &self->held[i];
        PyObject *conn = Py_NewRef(p->conn);
        PyObject *closed = get_field(conn, A_closed);
        Py_ssize_t fd = closed ? long_field(conn, A_fd) : -1;
        int gone = closed == NULL || fd < 0 ? -1 : PyObject_IsTrue(closed) || fd != p->fd;
        Py_XDECREF(closed);
        if (gone > 0) { /* closed meanwhile (its descriptor may be another's now): not written */
            int ok = !p->iterable || (set_field(conn, A_result, p->result) == 0 &&
                                      run1(self->close_result, conn) == 0);
            release(p);
            gone = ok ? 0 : -1;
        } else if (gone == 0)
            gone = settle(self, p);
        else
            release(p);
        if (gone < 0) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_DECREF(conn);
                r = -1;
                i++;
                break;
            }
            PyObject *value = raised();
            PyObject *res = PyObject_CallFunctionObjArgs(self->flush_failed, conn,
                                                         value ? value : Py_None, NULL);
            if (res == NULL)
                PyErr_WriteUnraisable(self->flush_failed);
            Py_XDECREF(res);
            Py_XDECREF(value);
        }
        Py_DECREF(conn);
    }
    self->flushing = 0;
    memmove(self->held, self->held + i, (self->held_count - i) * sizeof(Pending));
    self->held_count -= i;
    self->held_bytes = 0;
    return r;
}

/* A framed response: written now unless corking, when it waits for the poll's batch to end
   (Core.flush), for the cork window to run out, or for CORK_BYTES to be held. */
static int
hold(Core *self, Pending *p)
{
    if (self->cork <= 0 || self->flushing)
        return settle(self, p);
    if (self->held_count == self->held_cap) {
        Py_ssize_t cap = self->held_cap ? self->held_cap * 2 : 64;
        Pending *more = PyMem_Realloc(self->held, cap * sizeof(Pending));
        if (more == NULL) {
            release(p);
            PyErr_NoMemory();
            return -1;
        }
        self->held = more;
        self->held_cap = cap;
    }
    double now = monotonic();
    self->slow_app = now - self->app_started >= self->cork;
    if (self->held_count == 0)
        self->held_since = now;
    self->held[self->held_count++] = *p;
    self->held_bytes += PyBytes_GET_SIZE(p->out) + (p->body ? PyBytes_GET_SIZE(p->body) : 0);
    if (now - self->held_since >= self->cork || self->held_bytes >= CORK_BYTES)
        return flush_held(self);
    return 0;
}

/* adopt(), unless the request was adopted already (the app called write()). */
static int
adopted(Core *self, PyObject *conn, PyObject *head)
{
    PyObject *request = get_field(conn, A_request);
    if (request == NULL)
        return -1;
    int done = request != Py_None;
    Py_DECREF(request);
    return done ? 0 : adopt(self, conn, head, 0);
}

#define TAKE_PIECES 8
#define TAKE_BYTES 65536

/* What an iterable answer (a generator, Flask's response) yields, taken as Worker._pump would
   ask for it while it stays small: 1 when it ended (*body: all it yielded joined; *pieces: how
   many were not empty); 0 when the rest is the Python path's (*taken holds what was taken,
   *error what the iterable raised, if it did); 2 when iter() failed (the Python path says so);
   -1 with an exception that is not the app's (KeyboardInterrupt) or ours.
   _pump sends the head with the first piece that is not empty: from then on start_response
   acts as after the head went out (headers_sent), and the head is what it was then (*status,
   *headers: new references, a copy of the list). */
static int
take(PyObject *result, StartResponse *start, PyObject *taken, PyObject **iterator,
     PyObject **error, PyObject **body, int *pieces, PyObject **status, PyObject **headers)
{
    *iterator = PyObject_GetIter(result);
    if (*iterator == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            return -1;
        PyErr_Clear();
        return 2;
    }
    Py_ssize_t total = 0;
    for (;;) {
        PyObject *item = PyIter_Next(*iterator);
        if (item == NULL) {
            if (!PyErr_Occurred())
                break;
            if (!PyErr_ExceptionMatches(PyExc_Exception))
                return -1;
            *error = raised();
            return *error != NULL ? 0 : -1;
        }
        int appended = PyList_Append(taken, item);
        Py_DECREF(item);
        if (appended < 0)
            return -1;
        if (!PyBytes_CheckExact(item))
            return 0;
        total += PyBytes_GET_SIZE(item);
        if (PyBytes_GET_SIZE(item) > 0 && ++*pieces == 1) {
            if (start->status == NULL || start->status == Py_None || start->headers == NULL ||
                !PyList_Check(start->headers))
                return 0; /* no start_response yet: the Python path says so */
            *status = Py_NewRef(start->status);
            *headers = PyList_GetSlice(start->headers, 0, PyList_GET_SIZE(start->headers));
            if (*headers == NULL)
                return -1;
            start->headers_sent = 1;
        }
        if (PyList_GET_SIZE(taken) > TAKE_PIECES || total > TAKE_BYTES)
            return 0;
    }
    Py_ssize_t count = PyList_GET_SIZE(taken);
    if (count == 1) {
        *body = Py_NewRef(PyList_GET_ITEM(taken, 0));
        return 1;
    }
    *body = PyBytes_FromStringAndSize(NULL, total);
    if (*body == NULL)
        return -1;
    char *o = PyBytes_AS_STRING(*body);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *piece = PyList_GET_ITEM(taken, i);
        o = put(o, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece));
    }
    return 1;
}

/* The app answered: frame and write the common response here, or hand it to the Python path. */
static PyObject *
respond(Core *self, PyObject *conn, StartResponse *start, PyObject *head, const Head *h,
        PyObject *result)
{
    Plan plan;
    PyObject *body = NULL, *taken = NULL, *iterator = NULL, *error = NULL, *r = NULL;
    PyObject *status = NULL, *headers = NULL;
    int pieces = 0, iterable = 0, sent_before = start->headers_sent;
    if (PyList_CheckExact(result) || Py_TYPE(result) == (PyTypeObject *)self->file_wrapper) {
        if (PyList_CheckExact(result) && PyList_GET_SIZE(result) == 1)
            body = Py_NewRef(PyList_GET_ITEM(result, 0));
        pieces = 1;
    } else if (!sent_before) {
        iterable = 1;
        taken = PyList_New(0);
        int took = taken ? take(result, start, taken, &iterator, &error, &body, &pieces, &status,
                                &headers)
                         : -1;
        start->headers_sent = 0; /* set again when the head goes out */
        if (took < 0)
            goto done;
        if (took == 0) {
            r = adopted(self, conn, head) < 0
                    ? NULL
                    : PyObject_CallFunctionObjArgs(self->resume, conn, result, taken, iterator,
                                                   error ? error : Py_None, NULL);
            goto done;
        }
        if (took == 2)
            iterable = 0; /* iter() failed: the Python path answers 500 */
    }
    if (status == NULL) {
        status = Py_XNewRef(start->status);
        headers = Py_XNewRef(start->headers);
    }
    refresh_date();
    if (body == NULL || !PyBytes_CheckExact(body) || sent_before || status == NULL ||
        status == Py_None || headers == NULL || headers == Py_None ||
        !plan_head(status, headers, h->method == M_HEAD, h->http11, PyBytes_GET_SIZE(body),
                   self->server_len, &plan) ||
        (plan.chunked && pieces > 1)) { /* _pump would frame each piece as a chunk */
        if (adopted(self, conn, head) < 0)
            goto done;
        PyObject *ok = iterable ? PyObject_CallFunctionObjArgs(self->resume, conn, result, taken,
                                                               iterator, Py_None, NULL)
                                : PyObject_CallFunctionObjArgs(self->answer, conn, result, NULL);
        if (ok != NULL) {
            Py_DECREF(ok);
            r = Py_NewRef(Py_None);
        }
        goto done;
    }
    Py_ssize_t body_len = PyBytes_GET_SIZE(body);
    int has_body = !plan.no_body && body_len > 0;
    int apart = has_body && body_len > COPY_BODY; /* written from the app's own bytes */
    char pre[24];
    Py_ssize_t pre_len = plan.chunked && body_len ? chunk_prefix(pre, body_len) : 0;
    const char *tail = !plan.chunked ? NULL : body_len ? "\r\n0\r\n\r\n" : "0\r\n\r\n";
    Py_ssize_t tail_len = !plan.chunked ? 0 : body_len ? 7 : 5;
    Py_ssize_t fd = long_field(conn, A_fd);
    if (fd < 0)
        goto done;
    Pending p = {.conn = conn, .result = result, .head = head, .fd = (int)fd,
                 .iterable = iterable};
    p.out = PyBytes_FromStringAndSize(
        NULL, plan.head_len + pre_len + (apart ? 0 : (has_body ? body_len : 0) + tail_len));
    if (p.out == NULL)
        goto done;
    char *o = PyBytes_AS_STRING(p.out);
    write_head(o, status, headers, h->http11, &plan, self->server, self->server_len);
    o = put(o + plan.head_len, pre, pre_len);
    if (apart) {
        p.body = body;
        p.tail = tail;
        p.tail_len = tail_len;
    } else {
        if (has_body)
            o = put(o, PyBytes_AS_STRING(body), body_len);
        if (tail != NULL)
            put(o, tail, tail_len);
    }
    start->headers_sent = 1;
    Py_INCREF(conn);
    Py_INCREF(result);
    Py_INCREF(head);
    Py_XINCREF(p.body);
    r = hold(self, &p) < 0 ? NULL : Py_NewRef(Py_None);
done:
    Py_XDECREF(body);
    Py_XDECREF(taken);
    Py_XDECREF(iterator);
    Py_XDECREF(error);
    Py_XDECREF(status);
    Py_XDECREF(headers);
    return r;
}

static PyObject *
serve(Core *self, PyObject *conn, PyObject *proto, const Head *h, Py_ssize_t n)
{
    PyObject *head = PyBytes_FromStringAndSize(read_buffer, n);
    if (head == NULL)
        return NULL;
    PyObject *r = NULL, *environ = NULL, *raw_uri = NULL, *entry = NULL, *result = NULL;
    PyObject *start = get_field(conn, A_start);
    PyObject *base = start ? get_field(conn, A_environ) : NULL;
    if (base == NULL)
        goto done;
    if (!PyDict_CheckExact(base) || Py_TYPE(start) != &StartResponseType) {
        r = hand_back(conn, proto, self, PyBytes_AS_STRING(head), n);
        goto done;
    }
    const char *p = PyBytes_AS_STRING(head);
    environ = build_environ(base, p, h, self->empty_input, &raw_uri);
    if (environ == NULL)
        goto done;
    StartResponse *sr = (StartResponse *)start;
    Py_XSETREF(sr->status, Py_NewRef(Py_None));
    Py_XSETREF(sr->headers, Py_NewRef(Py_None));
    sr->headers_sent = 0;
    if (set_field(conn, A_phase, PHASE_IN_APP) < 0 ||
        set_field(conn, A_deadline, NEVER) < 0)
        goto done;
    if (self->count != NULL && self->count != Py_None) {
        PyObject *counted = PyObject_CallNoArgs(self->count);
        if (counted == NULL)
            goto done;
        Py_DECREF(counted);
    }
    /* An app as slow as the cork window would hold the responses framed before it for its
       whole run: after a slow one, those are written before the next app is called. */
    if (self->slow_app && self->held_count && flush_held(self) < 0)
        goto done;
    double started = self->app_started = monotonic();
    entry = Py_BuildValue("(OOOdO)", conn, METHOD_STR[h->method], raw_uri, started, head);
    if (entry == NULL || PyList_Append(self->running, entry) < 0)
        goto done;
    /* Listed as running until the answer is out: an iterable runs app code while it is taken,
       and a write() from it adopts the request through this entry. */
    result = PyObject_CallFunctionObjArgs(self->app, environ, start, NULL);
    if (result == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception))
            goto done; /* KeyboardInterrupt, SystemExit: not the app's failure to answer */
        PyObject *value = raised();
        if (value == NULL)
            value = Py_NewRef(Py_None);
        int ok = -1;
        PyObject *request = get_field(conn, A_request);
        if (request != NULL) {
            ok = request != Py_None ? 0 : adopt(self, conn, head, 0);
            Py_DECREF(request);
        }
        if (ok == 0)
            ok = run2(self->app_failed, conn, value);
        Py_DECREF(value);
        if (ok == 0)
            r = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *request = get_field(conn, A_request);
    if (request == NULL)
        goto done;
    int adopted = request != Py_None; /* by write(), during the app */
    Py_DECREF(request);
    if (adopted) {
        if (run2(self->answer, conn, result) == 0)
            r = Py_NewRef(Py_None);
        goto done;
    }
    r = respond(self, conn, sr, head, h, result);
done:
    if (entry != NULL) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb); /* (PyList_SetSlice must not run with one set) */
        drop_running(self, entry);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(result);
    Py_XDECREF(entry);
    Py_XDECREF(raw_uri);
    Py_XDECREF(environ);
    Py_XDECREF(base);
    Py_XDECREF(start);
    Py_DECREF(head);
    return r;
}

/* Worker._read, after what is held went out (as hand_back). */
static PyObject *
pure_read(Core *self, PyObject *conn)
{
    if (self->held_count && flush_held(self) < 0)
        return NULL;
    return call1(self->pure_read, conn);
}

static PyObject *
core_call(Core *self, PyObject *args, PyObject *kwds)
{
    PyObject *conn;
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 1)
        conn = PyTuple_GET_ITEM(args, 0);
    else if (!PyArg_ParseTuple(args, "O:Core", &conn))
        return NULL;
    Py_ssize_t phase = long_field(conn, A_phase);
    if (phase == -1 && PyErr_Occurred())
        return NULL;
    if (phase != READ_HEAD)
        return pure_read(self, conn);
    PyObject *proto = get_field(conn, A_proto);
    if (proto == NULL)
        return NULL;
    PyObject *r = NULL;
    PyObject *buffer = PyObject_GetAttr(proto, A_buffer);
    Py_ssize_t state = buffer ? long_attr(proto, A_state) : -1;
    if (state == -1 && PyErr_Occurred())
        goto done;
    if (state != 0 || !PyByteArray_Check(buffer) || PyByteArray_GET_SIZE(buffer)) {
        r = pure_read(self, conn); /* a request already under way */
        goto done;
    }
    Py_ssize_t fd = long_field(conn, A_fd);
    if (fd == -1 && PyErr_Occurred())
        goto done;
    Py_ssize_t n = read((int)fd, read_buffer, sizeof read_buffer);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            r = run2(self->arm, conn, self->in_mask) == 0 ? Py_NewRef(Py_None) : NULL;
        else
            r = run1(self->close, conn) == 0 ? Py_NewRef(Py_None) : NULL;
        goto done;
    }
    /* As ServerConnection.receive_head: one whole head alone, not starting with an empty line,
       short enough that no field or head limit can be reached. */
    const char *end = n >= 4 ? memmem(read_buffer, n, "\r\n\r\n", 4) : NULL;
    const char *crlf = end ? memchr(read_buffer, '\r', n) : NULL;
    Head h;
    if (end != read_buffer + n - 4 || crlf == read_buffer || n > self->short_head ||
        !parse(read_buffer, n, crlf - read_buffer, &self->lim, &h) || h.proxy || !h.keep_alive) {
        r = hand_back(conn, proto, self, read_buffer, n);
        goto done;
    }
    PyObject *builder = get_field(conn, A_builder);
    PyObject *script = builder ? PyObject_GetAttr(builder, A_script_name) : NULL;
    PyObject *closing = script ? PyObject_GetAttr(self->worker, A_closing) : NULL;
    int other = closing ? PyObject_IsTrue(script) : -1;
    if (other == 0)
        other = PyObject_IsTrue(closing);
    Py_XDECREF(builder);
    Py_XDECREF(script);
    Py_XDECREF(closing);
    if (other < 0)
        goto done;
    if (other)
        r = hand_back(conn, proto, self, read_buffer, n);
    else
        r = serve(self, conn, proto, &h, n);
done:
    Py_XDECREF(buffer);
    Py_DECREF(proto);
    return r;
}

static PyObject *
core_adopt(Core *self, PyObject *conn)
{
    Py_ssize_t count = PyList_GET_SIZE(self->running);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = PyList_GET_ITEM(self->running, i);
        if (PyTuple_GET_ITEM(entry, 0) == conn) {
            if (adopt(self, conn, PyTuple_GET_ITEM(entry, 4), 0) < 0)
                return NULL;
            Py_RETURN_NONE;
        }
    }
    PyErr_SetString(PyExc_LookupError, "no request of this connection is in the app");
    return NULL;
}

static int
core_traverse(Core *self, visitproc visit, void *arg)
{
    Py_VISIT(self->worker);
    Py_VISIT(self->app);
    Py_VISIT(self->empty_input);
    Py_VISIT(self->request_type);
    Py_VISIT(self->in_mask);
    Py_VISIT(self->pure_read);
    Py_VISIT(self->arm);
    Py_VISIT(self->close);
    Py_VISIT(self->process);
    Py_VISIT(self->answer);
    Py_VISIT(self->app_failed);
    Py_VISIT(self->pump);
    Py_VISIT(self->finish);
    Py_VISIT(self->resume);
    Py_VISIT(self->close_result);
    Py_VISIT(self->file_wrapper);
    Py_VISIT(self->running);
    Py_VISIT(self->count);
    Py_VISIT(self->flush_failed);
    for (Py_ssize_t i = 0; i < self->held_count; i++) {
        Py_VISIT(self->held[i].conn);
        Py_VISIT(self->held[i].result);
    }
    return 0;
}

static int
core_clear(Core *self)
{
    Py_CLEAR(self->worker);
    Py_CLEAR(self->app);
    Py_CLEAR(self->empty_input);
    Py_CLEAR(self->request_type);
    Py_CLEAR(self->in_mask);
    Py_CLEAR(self->pure_read);
    Py_CLEAR(self->arm);
    Py_CLEAR(self->close);
    Py_CLEAR(self->process);
    Py_CLEAR(self->answer);
    Py_CLEAR(self->app_failed);
    Py_CLEAR(self->pump);
    Py_CLEAR(self->finish);
    Py_CLEAR(self->resume);
    Py_CLEAR(self->close_result);
    Py_CLEAR(self->file_wrapper);
    Py_CLEAR(self->running);
    Py_CLEAR(self->count);
    Py_CLEAR(self->flush_failed);
    for (Py_ssize_t i = 0; i < self->held_count; i++)
        release(&self->held[i]);
    self->held_count = 0;
    return 0;
}

static void
core_dealloc(Core *self)
{
    PyObject_GC_UnTrack(self);
    core_clear(self);
    PyMem_Free(self->held);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
core_flush(Core *self, PyObject *unused)
{
    if (self->held_count && flush_held(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef core_methods[] = {
    {"flush", (PyCFunction)core_flush, METH_NOARGS,
     "flush(): write the responses held back while corking, and finish their requests; a "
     "connection whose response fails is handed to Worker._flush_failed."},
    {"adopt", (PyCFunction)core_adopt, METH_O,
     "adopt(conn): hand the request of conn, whose app runs now, to the Python path (the "
     "app called write())."},
    {NULL}};

static PyMemberDef core_members[] = {
    {"running", T_OBJECT, offsetof(Core, running), READONLY,
     "(conn, method, raw_uri, started, head) of each request whose app runs now"},
    {"cork", T_DOUBLE, offsetof(Core, cork), 0,
     "the longest a framed response waits for the poll's batch to end (seconds; 0: written at "
     "once). A loop that sets it calls flush() after each batch."},
    {"held", T_PYSSIZET, offsetof(Core, held_count), READONLY,
     "how many framed responses wait for flush()"},
    {"count", T_OBJECT, offsetof(Core, count), 0,
     "called with no arguments before each app call (--max-requests), or None"},
    {NULL}};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "netassist._speedups.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Core(worker, app, limits, server_name, keep_alive, empty_input, Request, "
              "FileWrapper, in_mask, pure_read): called with a connection in place of "
              "Worker._read.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_call = (ternaryfunc)core_call,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_members = core_members,
};

/* --- the module ---------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"parse_head", parse_head, METH_VARARGS,
     "parse_head(head, line_end, limits) -> the arguments of protocol.Request for a common "
     "head, or None: the Python parser's to judge. limits: (max_request_line, "
     "max_header_bytes, max_header_field, max_header_count)."},
    {"frame_whole", frame_whole, METH_VARARGS,
     "frame_whole(status, headers, body, is_head, http11, server_name) -> the whole response "
     "of a keep-alive request, as ServerConnection.whole_response frames it, or None where the "
     "Python path decides."},
    {NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "netassist._speedups",
    "The compiled core of the WSGI server's common request (server/_speedups.c).", -1,
    module_methods};

#define INTERN(var, text)                                                                      \
    if ((var = PyUnicode_InternFromString(text)) == NULL)                                      \
        return NULL;

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_tables();
    for (int m = 0; m < M_COUNT; m++)
        INTERN(METHOD_STR[m], METHOD_NAMES[m]);
    INTERN(S_11, "1.1");
    INTERN(S_10, "1.0");
    INTERN(S_HTTP11, "HTTP/1.1");
    INTERN(S_HTTP10, "HTTP/1.0");
    INTERN(S_ZERO, "0");
    INTERN(S_COMMA, ",");
    INTERN(S_SEMI, "; ");
    INTERN(K_PATH_INFO, "PATH_INFO");
    INTERN(K_QUERY_STRING, "QUERY_STRING");
    INTERN(K_REQUEST_METHOD, "REQUEST_METHOD");
    INTERN(K_RAW_URI, "RAW_URI");
    INTERN(K_REQUEST_URI, "REQUEST_URI");
    INTERN(K_SERVER_PROTOCOL, "SERVER_PROTOCOL");
    INTERN(K_INPUT, "wsgi.input");
    INTERN(K_CONTENT_LENGTH, "CONTENT_LENGTH");
    INTERN(K_HTTP_COOKIE, "HTTP_COOKIE");
    INTERN(A_phase, "phase");
    INTERN(A_proto, "proto");
    INTERN(A_fd, "fd");
    INTERN(A_environ, "environ");
    INTERN(A_start, "start");
    INTERN(A_builder, "builder");
    INTERN(A_script_name, "script_name");
    INTERN(A_deadline, "deadline");
    INTERN(A_armed, "armed");
    INTERN(A_request, "request");
    INTERN(A_result, "result");
    INTERN(A_out, "out");
    INTERN(A_buffer, "_buffer");
    INTERN(A_state, "_state");
    INTERN(A_closing, "_closing");
    INTERN(A_adopt, "adopt");
    INTERN(A_receive_data, "receive_data");
    INTERN(A_closed, "closed");
    if ((ZERO_INT = PyLong_FromLong(0)) == NULL ||
        (PHASE_READ_HEAD = PyLong_FromLong(READ_HEAD)) == NULL ||
        (PHASE_IN_APP = PyLong_FromLong(IN_APP)) == NULL ||
        (PHASE_WRITE = PyLong_FromLong(WRITE)) == NULL ||
        (NEVER = PyFloat_FromDouble(Py_HUGE_VAL)) == NULL)
        return NULL;
    if (PyType_Ready(&StartResponseType) < 0 || PyType_Ready(&CoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "StartResponse", (PyObject *)&StartResponseType) < 0 ||
        PyModule_AddObjectRef(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddIntConstant(m, "RECV_SIZE", RECV_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
