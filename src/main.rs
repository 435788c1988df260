//! The `tocsin` binary: everything lives in the library; see `tocsin --help`.

fn main() -> std::process::ExitCode {
    tocsin::cli::main()
}
