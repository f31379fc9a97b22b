/* Prints the frame-layout facts heapscope's stack readers (crates/heapscope-tracker/src/stack/)
 * hard-code, read with offsetof from the interpreter's own internal headers. Run in the
 * Python root: scripts/in-pyroot.sh scripts/frame-offsets.sh 3.14 */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include "internal/pycore_frame.h"
#include "internal/pycore_object.h"
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe_structs.h"
#include "internal/pycore_stackref.h"
#endif

#define P(name, value) printf("%-28s %zu\n", name, (size_t)(value))

int main(void) {
    P("tstate.current_frame", offsetof(PyThreadState, current_frame));
    P("tstate.native_thread_id", offsetof(PyThreadState, native_thread_id));
    P("frame.f_executable", offsetof(_PyInterpreterFrame, f_executable));
    P("frame.previous", offsetof(_PyInterpreterFrame, previous));
    P("frame.instr_ptr", offsetof(_PyInterpreterFrame, instr_ptr));
    P("frame.owner", offsetof(_PyInterpreterFrame, owner));
    P("owner.generator", FRAME_OWNED_BY_GENERATOR);
#if PY_VERSION_HEX >= 0x030E0000
    P("owner.interpreter", FRAME_OWNED_BY_INTERPRETER);
    P("stackref.tag_bits", Py_TAG_BITS);
#endif
#if PY_VERSION_HEX < 0x030F0000
    P("owner.cstack", FRAME_OWNED_BY_CSTACK);
#endif
    P("code.co_filename", offsetof(PyCodeObject, co_filename));
    P("code.co_qualname", offsetof(PyCodeObject, co_qualname));
    P("code._co_firsttraceable", offsetof(PyCodeObject, _co_firsttraceable));
    P("code._co_monitoring", offsetof(PyCodeObject, _co_monitoring));
    P("code.co_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    P("sizeof(PyGC_Head)", sizeof(PyGC_Head));
    P("Py_TPFLAGS_MANAGED_DICT", Py_TPFLAGS_MANAGED_DICT);
#ifdef Py_TPFLAGS_INLINE_VALUES
    P("Py_TPFLAGS_INLINE_VALUES", Py_TPFLAGS_INLINE_VALUES);
#endif
    P("Py_TPFLAGS_MANAGED_WEAKREF", Py_TPFLAGS_MANAGED_WEAKREF);
    P("Py_TPFLAGS_PREHEADER", Py_TPFLAGS_PREHEADER);
    P("PyRuntime.debug_offsets", offsetof(_PyRuntimeState, debug_offsets));
    P("PyRuntime.interpreters.mutex", offsetof(_PyRuntimeState, interpreters.mutex));
    P("PyRuntime.interpreters.head", offsetof(_PyRuntimeState, interpreters.head));
    P("PyRuntime._main_interpreter", offsetof(_PyRuntimeState, _main_interpreter));
    P("interp.ceval.gil", offsetof(PyInterpreterState, ceval.gil));
    P("tstate.interp", offsetof(PyThreadState, interp));
#define D(field) P("debug." #field, offsetof(_Py_DebugOffsets, field))
    D(version);
    D(free_threaded);
    D(thread_state.current_frame);
    D(thread_state.native_thread_id);
    D(interpreter_frame.previous);
    D(interpreter_frame.executable);
    D(interpreter_frame.instr_ptr);
    D(interpreter_frame.owner);
    D(code_object.filename);
    D(code_object.qualname);
    D(code_object.co_code_adaptive);
    D(runtime_state.interpreters_head);
    D(interpreter_state.ceval_gil);
    return 0;
}
