// Shared libraries loaded the first time a feature needs them (dlopen), not
// at every start of every program linked with them: libcurl for
// sluice-query --url, libpcap for a query's filter, libsystemd under a
// service manager (docs/performance.md, "Start-up and size"). Header-only,
// so that using it adds no library to a program's start either.
#pragma once

#include <cstring>
#include <initializer_list>
#include <string>

#include <dlfcn.h>

namespace sluice::report {

// A function pointer to set from a library's symbol of that name.
struct Symbol {
    void* slot;  // the address of the function pointer
    const char* name;
};
template <class F>
Symbol symbol(F*& fn, const char* name) {
    return {&fn, name};
}

// Loads `soname` (RTLD_NOW | RTLD_LOCAL) and sets every symbol's function
// pointer. Returns "" or what failed, naming the Debian `package` that
// provides the library; on failure no pointer is to be used.
inline std::string load_shared_library(const char* soname, const char* package,
                                       std::initializer_list<Symbol> symbols) {
    void* h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return std::string("cannot load ") + soname + " (apt-get install " + package +
               "): " + ::dlerror();
    for (const Symbol& s : symbols) {
        void* f = ::dlsym(h, s.name);
        if (!f) return std::string(soname) + " lacks " + s.name + ": upgrade " + package;
        // The way dlsym(3) documents: a function pointer has an object
        // pointer's size and representation on every POSIX system.
        std::memcpy(s.slot, &f, sizeof f);
    }
    return {};
}

}  // namespace sluice::report
