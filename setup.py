"""Build hook for phiguard's one C extension; everything else is in pyproject.toml.

``phiguard.crypto._batch`` (batch HMAC-SHA256 and AES-256-GCM on OpenSSL's libcrypto, see
the file's header) speeds up bulk loads. It is optional: where no C compiler or OpenSSL
headers are found the install goes on and phiguard uses the same computations in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "phiguard.crypto._batch",
            sources=["phiguard/crypto/_batch.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Werror=implicit-function-declaration"],
            optional=True,
        )
    ]
)
