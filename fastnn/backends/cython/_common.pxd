# Declarations shared by the Cython wrappers (csrc/fastnn.h).
cdef extern from "fastnn.h":
    int FNN_ISA_PORTABLE
    int FNN_ISA_AVX2
    int FNN_ISA_AVX512
    int fnn_cpu_isa() nogil
    int fnn_cpu_detect() nogil
    const char *fnn_isa_name(int isa) nogil
    void fnn_set_num_threads(int n) nogil
    int fnn_get_num_threads() nogil
    int fnn_get_max_threads() nogil
    void fnn_set_adaptive(int on) nogil
    int fnn_get_adaptive() nogil
    void fnn_reset_load() nogil
    double fnn_others_load() nogil
