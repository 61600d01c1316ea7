//! Kernel tests: the real agent, real probes, real behaviour. Root only; serial.
