//! Empty library target: lets the agent crate build-depend on this one, so cargo rebuilds the
//! eBPF object when it changes (the programs themselves are the `sensor` binary target).
#![no_std]
