// The engine allocates and frees many small objects per event (decoded strings, outputs,
// changelog records); glibc's allocator spent a quarter of a Kafka-mode profile in malloc,
// free and consolidation. mimalloc is made for this pattern.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vigil::cli::main()
}
