#include "funcdata.h"

// func growStack()
TEXT ·growStack(SB), 0, $3072-0
	NO_LOCAL_POINTERS
	RET
