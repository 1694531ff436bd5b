//! `jetstream-pubsub stream add`.

use clap::{Args, Subcommand};
use jetstream_pubsub_host::provision::{self, Storage, StreamSpec};

use super::{ComponentArgs, Failure};

#[derive(Subcommand)]
pub(crate) enum StreamCommand {
    /// Create a stream (an existing one of the same name is reported unchanged).
    Add(AddArgs),
}

#[derive(Args)]
pub(crate) struct AddArgs {
    /// The stream name.
    name: String,
    /// Subjects it stores, comma separated (wildcards allowed).
    #[arg(long, value_delimiter = ',', required = true)]
    subjects: Vec<String>,
    /// Storage type.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    storage: Storage,
    /// Replicas (up to the cluster size).
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Server URL(s), when no component manifest gives them.
    #[arg(long, conflicts_with = "component")]
    url: Option<String>,
    #[command(flatten)]
    component: ComponentArgs,
}

pub(crate) async fn run(command: StreamCommand) -> Result<(), Failure> {
    match command {
        StreamCommand::Add(args) => add(args).await,
    }
}

async fn add(args: AddArgs) -> Result<(), Failure> {
    // The component reads the servers (and credentials) either way: `--url` is `natsURL`.
    let metadata = match &args.url {
        Some(url) => vec![("natsURL".to_string(), url.clone())],
        None => args.component.manifest()?.metadata,
    };
    let settings = args
        .component
        .runtime(&metadata)?
        .connection_settings(&metadata)
        .await
        .map_err(|err| Failure::Usage(err.to_string()))?;
    let spec = StreamSpec {
        name: args.name,
        subjects: args.subjects,
        storage: args.storage,
        replicas: args.replicas,
    };
    let summary = provision::add_stream(&settings, &spec).await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
