#ifndef VIT_CPNG_SHIM_H
#define VIT_CPNG_SHIM_H
// libpng, for reading input images and writing attention maps and report thumbnails. Only the
// simplified API (png_image_*) is used: it reports errors in png_image.message instead of
// longjmp-ing through the caller.
#include <png.h>
#endif
