#include "funcdata.h"

// func grow()
TEXT ·grow(SB), 0, $3072-0
	NO_LOCAL_POINTERS
	RET
