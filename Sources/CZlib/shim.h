#ifndef VIT_CZLIB_SHIM_H
#define VIT_CZLIB_SHIM_H
// zlib, for reading gzip-compressed IDX files (MNIST / Fashion-MNIST as distributed).
#include <zlib.h>
#endif
