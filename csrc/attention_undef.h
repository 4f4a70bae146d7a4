/* Clears the macros that parametrize one instance of attention_tiles.h (see attention.c). */
#undef FT
#undef VEC
#undef VL
#undef NV
#undef V_LOAD
#undef V_STORE
#undef V_SET1
#undef V_ZERO
#undef V_FMA
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_MAX
#undef V_EXP2
#undef SFX
