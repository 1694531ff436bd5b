//! `jetstream-pubsub`: publish, subscribe, provision streams and run the demo through the
//! sandboxed `pubsub.jetstream` component.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
