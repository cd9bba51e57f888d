#ifndef VIT_CTURBOJPEG_SHIM_H
#define VIT_CTURBOJPEG_SHIM_H
// libjpeg-turbo's TurboJPEG API, for reading JPEG photos (data format `folder`, `vit predict`).
// It reports errors through return codes and tjGetErrorStr2 instead of longjmp-ing through the
// caller, and decodes with libjpeg's defaults (accurate integer DCT, fancy upsampling), the
// ones Pillow uses.
#include <turbojpeg.h>
#endif
