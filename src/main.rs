fn main() -> std::process::ExitCode {
    batv_proxy::cli::main()
}
