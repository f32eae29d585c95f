//! Thin binary: everything lives in the library so tests and benchmarks can drive it.
fn main() -> std::process::ExitCode {
    pogo::app::main()
}
