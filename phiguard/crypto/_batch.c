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

static PyObject *
hmac_many(PyObject *self, PyObject *args)
{
    Py_buffer key, prefix;
    PyObject *values, *result = NULL;
    Py_ssize_t out_len;
    unsigned char k[BLOCK] = {0}, pad[BLOCK] = {0};
    unsigned char mid[SHA256_DIGEST_LENGTH], mac[SHA256_DIGEST_LENGTH];
    SHA256_CTX inner, outer, ctx;
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
    if (key.len > BLOCK)
        SHA256(key.buf, (size_t)key.len, k);
    else
        memcpy(k, key.buf, (size_t)key.len);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&inner);
    SHA256_Update(&inner, pad, BLOCK);
    SHA256_Update(&inner, prefix.buf, (size_t)prefix.len);
    for (int i = 0; i < BLOCK; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&outer);
    SHA256_Update(&outer, pad, BLOCK);

    Py_ssize_t n = PyList_GET_SIZE(values);
    result = PyList_New(n);
    if (result == NULL)
        goto cleanse;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyList_GET_ITEM(values, i);
        PyObject *item;
        if (v == Py_None) {
            item = Py_NewRef(Py_None);
        } else if (PyBytes_Check(v)) {
            ctx = inner;
            SHA256_Update(&ctx, PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v));
            SHA256_Final(mid, &ctx);
            ctx = outer;
            SHA256_Update(&ctx, mid, sizeof mid);
            SHA256_Final(mac, &ctx);
            item = PyBytes_FromStringAndSize((const char *)mac, out_len);
            if (item == NULL) {
                Py_CLEAR(result);
                goto cleanse;
            }
        } else {
            PyErr_Format(PyExc_TypeError, "values[%zd] is not bytes or None", i);
            Py_CLEAR(result);
            goto cleanse;
        }
        PyList_SET_ITEM(result, i, item);
    }
cleanse:
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    OPENSSL_cleanse(mid, sizeof mid);
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

static PyMethodDef methods[] = {
    {"hmac_many", hmac_many, METH_VARARGS,
     "hmac_many(key, prefix, values, out_len): HMAC-SHA256(key, prefix + v)[:out_len] per value."},
    {"gcm_many", gcm_many, METH_VARARGS,
     "gcm_many(key, header, nonces, plaintexts, aad): header + nonce + AES-256-GCM per item."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batch", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__batch(void)
{
    return PyModule_Create(&module);
}
