#ifndef VIT_CBLAS_SHIM_H
#define VIT_CBLAS_SHIM_H
// Debian's libopenblas-dev installs cblas.h (with the openblas_* extensions such as
// openblas_set_num_threads and openblas_get_corename) through the alternatives system.
#include <cblas.h>
// LAPACKE (liblapacke-dev), for the singular value decomposition behind the pseudo-inverse of
// a resize matrix (resampling patch-embedding weights to another patch size).
#include <lapacke.h>
#endif
