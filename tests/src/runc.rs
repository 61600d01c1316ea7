//! runc containers for kernel tests (see the module docs once written).
