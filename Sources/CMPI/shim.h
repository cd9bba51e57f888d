#ifndef VIT_CMPI_SHIM_H
#define VIT_CMPI_SHIM_H
// Open MPI's C interface (Debian's libopenmpi-dev; pkg-config name ompi-c). Its handles such as
// MPI_COMM_WORLD, MPI_FLOAT and MPI_SUM are macros over the addresses of global objects, which
// Swift does not import, so they are re-exported here as functions.
#include <mpi.h>

static inline MPI_Comm vit_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype vit_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype vit_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype vit_mpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype vit_mpi_char(void) { return MPI_CHAR; }
static inline MPI_Op vit_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op vit_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op vit_mpi_max(void) { return MPI_MAX; }
static inline void *vit_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request vit_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Errhandler vit_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Status *vit_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *vit_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline int vit_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int vit_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int vit_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }

#endif
