/*
 * Batch HMAC-SHA256 and AES-256-GCM for phiguard's bulk loads, on OpenSSL's libcrypto.
 *
 * Why this exists (docs/dev/foundation.md, "the PMI bulk load"): a 7.5-million-patient import
 * makes four HMACs and one AES-GCM token per patient. Through Python's hmac/_hashlib and
 * `cryptography`, each of those is a method call or three (~1 µs), which made the keyed work
 * the largest cost of the import. Neither library offers a batch call, so these two functions
 * take a whole column (a list of bytes) and loop in C. They compute exactly what the Python
 * code computes, and the tests compare them value by value:
 *
 *   hmac_many(key, prefix, values, out_len) -> [HMAC-SHA256(key, prefix || v)[:out_len] | None]
 *   gcm_many(key, header, nonces, plaintexts, aad)
 *       -> [header || nonce_i || AES-256-GCM(key, nonce_i, p_i, aad) || tag_i]
 *
 * and hmac_arrow / gcm_arrow, the same over the buffers of an Arrow string or binary array
 * (bounds-checked offsets and validity bitmap), returning buffers for a new Arrow array.
 *
 * HMAC is RFC 2104 over OpenSSL's SHA-256 with the inner and outer states computed once per
 * call and copied per value (the same saving Python's HMAC.copy() gives, without the calls).
 * Secrets never outlive a call: key-derived state is cleansed before returning.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: deprecated in 3.0, still the fast path */
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define BLOCK 64

/* The keyed inner and outer SHA-256 states of HMAC (RFC 2104), the inner one having also
 * absorbed `prefix`; computed once per call and copied per value. */
typedef struct {
    SHA256_CTX inner, outer;
} hmac_states;

static void
hmac_prepare(hmac_states *st, const Py_buffer *key, const Py_buffer *prefix)
{
    unsigned char k[BLOCK] = {0}, pad[BLOCK];
    if (key->len > BLOCK)
        SHA256(key->buf, (size_t)key->len, k);
    else
        memcpy(k, key->buf, (size_t)key->len);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&st->inner);
    SHA256_Update(&st->inner, pad, BLOCK);
    SHA256_Update(&st->inner, prefix->buf, (size_t)prefix->len);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&st->outer);
    SHA256_Update(&st->outer, pad, BLOCK);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
}

/* HMAC(key, prefix || msg), truncated to out_len bytes, into out. */
static void
hmac_one(const hmac_states *st, const void *msg, size_t len, unsigned char *out, size_t out_len)
{
    SHA256_CTX ctx = st->inner;
    unsigned char mid[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
    SHA256_Update(&ctx, msg, len);
    SHA256_Final(mid, &ctx);
    ctx = st->outer;
    SHA256_Update(&ctx, mid, sizeof mid);
    SHA256_Final(mac, &ctx);
    memcpy(out, mac, out_len);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    OPENSSL_cleanse(mid, sizeof mid);
    OPENSSL_cleanse(mac, sizeof mac);
}

static PyObject *
hmac_many(PyObject *self, PyObject *args)
{
    Py_buffer key, prefix;
    PyObject *values, *result = NULL;
    Py_ssize_t out_len;
    hmac_states st;
    unsigned char mac[SHA256_DIGEST_LENGTH];
    if (!PyArg_ParseTuple(args, "y*y*On", &key, &prefix, &values, &out_len))
        return NULL;
    if (!PyList_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "values must be a list");
        goto done;
    }
    if (out_len < 1 || out_len > SHA256_DIGEST_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "out_len must be 1..32");
        goto done;
    }
    hmac_prepare(&st, &key, &prefix);
    Py_ssize_t n = PyList_GET_SIZE(values);
    result = PyList_New(n);
    for (Py_ssize_t i = 0; result != NULL && i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i), *item = NULL;
        if (v == Py_None) {
            item = Py_NewRef(Py_None);
        } else if (PyBytes_Check(v)) {
            hmac_one(&st, PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v), mac, (size_t)out_len);
            item = PyBytes_FromStringAndSize((const char *)mac, out_len);
        } else {
            PyErr_Format(PyExc_TypeError, "values[%zd] is not bytes or None", i);
        }
        if (item == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, i, item);
    }
    OPENSSL_cleanse(&st, sizeof st);
    OPENSSL_cleanse(mac, sizeof mac);
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    return result;
}

#define NONCE 12
#define TAG 16

static PyObject *
gcm_many(PyObject *self, PyObject *args)
{
    Py_buffer key, header, nonces, aad;
    PyObject *plaintexts;
    if (!PyArg_ParseTuple(args, "y*y*y*Oy*", &key, &header, &nonces, &plaintexts, &aad))
        return NULL;
    PyObject *result = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    if (!PyList_Check(plaintexts)) {
        PyErr_SetString(PyExc_TypeError, "plaintexts must be a list");
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(plaintexts);
    if (key.len != 32 || nonces.len != NONCE * n) {
        PyErr_SetString(PyExc_ValueError, "need a 32-byte key and 12 bytes of nonce per item");
        goto done;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.buf, NULL) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "AES-256-GCM is not available");
        goto done;
    }
    result = PyList_New(n);
    if (result == NULL)
        goto done;
    const unsigned char *nonce = nonces.buf;
    for (Py_ssize_t i = 0; i < n; i++, nonce += NONCE) {
        PyObject *p = PyList_GET_ITEM(plaintexts, i);
        if (!PyBytes_Check(p)) {
            PyErr_Format(PyExc_TypeError, "plaintexts[%zd] is not bytes", i);
            goto fail;
        }
        Py_ssize_t plen = PyBytes_GET_SIZE(p);
        if (plen > INT_MAX - BLOCK) {
            PyErr_Format(PyExc_OverflowError, "plaintexts[%zd] is too long", i);
            goto fail;
        }
        PyObject *token = PyBytes_FromStringAndSize(NULL, header.len + NONCE + plen + TAG);
        if (token == NULL)
            goto fail;
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(token);
        memcpy(out, header.buf, (size_t)header.len);
        memcpy(out + header.len, nonce, NONCE);
        unsigned char *ct = out + header.len + NONCE;
        int len = 0, fin = 0;
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            (aad.len && EVP_EncryptUpdate(ctx, NULL, &len, aad.buf, (int)aad.len) != 1) ||
            EVP_EncryptUpdate(ctx, ct, &len, (const unsigned char *)PyBytes_AS_STRING(p),
                              (int)plen) != 1 ||
            EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, ct + plen) != 1) {
            Py_DECREF(token);
            PyErr_SetString(PyExc_RuntimeError, "AES-256-GCM encryption failed");
            goto fail;
        }
        PyList_SET_ITEM(result, i, token);
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    PyBuffer_Release(&key);
    PyBuffer_Release(&header);
    PyBuffer_Release(&nonces);
    PyBuffer_Release(&aad);
    return result;
}

/* ---- the same over Arrow buffers (a string/binary array: int32 offsets and data, read from
 * element `offset` on; a validity bitmap for the `length` elements read, starting at bit 0),
 * so a bulk load never turns a column into Python objects and back ------------------------ */

static int
arrow_span(Py_buffer *offsets, Py_buffer *data, Py_ssize_t offset, Py_ssize_t length)
{
    if (offset < 0 || length < 0 ||
        offsets->len < (offset + length + 1) * (Py_ssize_t)sizeof(int32_t)) {
        PyErr_SetString(PyExc_ValueError, "offsets buffer too short");
        return -1;
    }
    const int32_t *o = (const int32_t *)offsets->buf + offset;
    for (Py_ssize_t i = 0; i < length; i++) {
        if (o[i] < 0 || o[i + 1] < o[i] || o[i + 1] > data->len) {
            PyErr_SetString(PyExc_ValueError, "offsets out of range");
            return -1;
        }
    }
    return 0;
}

static int
arrow_valid(PyObject *validity, Py_buffer *bits, Py_ssize_t length)
{
    bits->buf = NULL;
    if (validity == Py_None)
        return 0;
    if (PyObject_GetBuffer(validity, bits, PyBUF_SIMPLE) < 0)
        return -1;
    if (bits->len * 8 < length) {
        PyBuffer_Release(bits);
        bits->buf = NULL;
        PyErr_SetString(PyExc_ValueError, "validity bitmap too short");
        return -1;
    }
    return 0;
}

#define IS_VALID(bits, i) \
    ((bits).buf == NULL || (((const unsigned char *)(bits).buf)[(i) >> 3] >> ((i) & 7) & 1))

static PyObject *
hmac_arrow(PyObject *self, PyObject *args)
{
    Py_buffer key, prefix, offsets, data, bits = {0};
    PyObject *validity, *out = NULL;
    Py_ssize_t offset, length, out_len;
    hmac_states st;
    if (!PyArg_ParseTuple(args, "y*y*Oy*y*nnn", &key, &prefix, &validity, &offsets, &data,
                          &offset, &length, &out_len))
        return NULL;
    if (out_len < 1 || out_len > SHA256_DIGEST_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "out_len must be 1..32");
        goto done;
    }
    if (arrow_span(&offsets, &data, offset, length) < 0 ||
        arrow_valid(validity, &bits, length) < 0)
        goto done;
    out = PyBytes_FromStringAndSize(NULL, length * out_len);
    if (out == NULL)
        goto done;
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out);
    memset(dst, 0, (size_t)(length * out_len));
    hmac_prepare(&st, &key, &prefix);
    const int32_t *o = (const int32_t *)offsets.buf + offset;
    const unsigned char *src = data.buf;
    for (Py_ssize_t i = 0; i < length; i++)
        if (IS_VALID(bits, i))
            hmac_one(&st, src + o[i], (size_t)(o[i + 1] - o[i]), dst + i * out_len,
                     (size_t)out_len);
    OPENSSL_cleanse(&st, sizeof st);
done:
    if (bits.buf != NULL)
        PyBuffer_Release(&bits);
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *
gcm_arrow(PyObject *self, PyObject *args)
{
    Py_buffer key, header, nonces, offsets, data, aad;
    Py_ssize_t offset, length;
    PyObject *out_offsets = NULL, *out_data = NULL, *result = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*nny*", &key, &header, &nonces, &offsets, &data,
                          &offset, &length, &aad))
        return NULL;
    if (key.len != 32 || nonces.len != NONCE * length) {
        PyErr_SetString(PyExc_ValueError, "need a 32-byte key and 12 bytes of nonce per item");
        goto done;
    }
    if (arrow_span(&offsets, &data, offset, length) < 0)
        goto done;
    const int32_t *o = (const int32_t *)offsets.buf + offset;
    long long total = (long long)(o[length] - o[0]) + (long long)length * (header.len + NONCE + TAG);
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "column too large for 32-bit offsets");
        goto done;
    }
    out_offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * (Py_ssize_t)sizeof(int32_t));
    out_data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out_offsets == NULL || out_data == NULL)
        goto done;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.buf, NULL) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "AES-256-GCM is not available");
        goto done;
    }
    int32_t *oo = (int32_t *)PyBytes_AS_STRING(out_offsets);
    unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(out_data);
    const unsigned char *src = data.buf, *nonce = nonces.buf;
    int32_t at = 0;
    for (Py_ssize_t i = 0; i < length; i++, nonce += NONCE) {
        int plen = o[i + 1] - o[i], len = 0, fin = 0;
        unsigned char *t = dst + at, *ct = t + header.len + NONCE;
        oo[i] = at;
        memcpy(t, header.buf, (size_t)header.len);
        memcpy(t + header.len, nonce, NONCE);
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            (aad.len && EVP_EncryptUpdate(ctx, NULL, &len, aad.buf, (int)aad.len) != 1) ||
            EVP_EncryptUpdate(ctx, ct, &len, src + o[i], plen) != 1 ||
            EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, ct + plen) != 1) {
            PyErr_SetString(PyExc_RuntimeError, "AES-256-GCM encryption failed");
            goto done;
        }
        at += (int32_t)(header.len + NONCE + plen + TAG);
    }
    oo[length] = at;
    result = PyTuple_Pack(2, out_offsets, out_data);
done:
    Py_XDECREF(out_offsets);
    Py_XDECREF(out_data);
    EVP_CIPHER_CTX_free(ctx);
    PyBuffer_Release(&key);
    PyBuffer_Release(&header);
    PyBuffer_Release(&nonces);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    PyBuffer_Release(&aad);
    return result;
}

static PyMethodDef methods[] = {
    {"hmac_many", hmac_many, METH_VARARGS,
     "hmac_many(key, prefix, values, out_len): HMAC-SHA256(key, prefix + v)[:out_len] per value."},
    {"gcm_many", gcm_many, METH_VARARGS,
     "gcm_many(key, header, nonces, plaintexts, aad): header + nonce + AES-256-GCM per item."},
    {"hmac_arrow", hmac_arrow, METH_VARARGS,
     "hmac_arrow(key, prefix, validity, offsets, data, offset, length, out_len): hmac_many over "
     "an Arrow string/binary array's buffers (validity from bit 0); fixed-width output, zeros "
     "where null."},
    {"gcm_arrow", gcm_arrow, METH_VARARGS,
     "gcm_arrow(key, header, nonces, offsets, data, offset, length, aad): gcm_many over an "
     "Arrow binary array's buffers; returns (int32 offsets, data) of the tokens."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__batch(void)
{
    return PyModule_Create(&module);
}
