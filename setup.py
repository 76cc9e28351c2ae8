"""Only what setup.cfg cannot declare: the optional native module of the embedded presearcher.

``optional=True``: where no C compiler is available the install still succeeds and the
presearcher runs its pure-Python loop (same answers, slower with many stored queries).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "beater.percolator.embedded._core",
            ["beater/percolator/embedded/_core.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
