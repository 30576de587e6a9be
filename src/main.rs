//! The `pitcher` binary: everything lives in the library; see `lib.rs`.

fn main() -> std::process::ExitCode {
    pitcher::cli::main()
}
