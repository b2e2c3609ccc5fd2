/* One include, compiled in the include context of a layer's target by
 * tests/layering/CMakeLists.txt: the header IMCORE_PROBE_HEADER names either
 * compiles (the layer may see it) or must not (the layers forbid it). */
#include IMCORE_PROBE_HEADER

int imcore_layering_probe(void);
int imcore_layering_probe(void) { return 0; }
