//! `vigil schema`: write (or check) the published JSON Schemas.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// Folder to write into.
    #[arg(long, default_value = "schemas")]
    out: PathBuf,
    /// Only check that the folder matches the code; exit 1 if not.
    #[arg(long)]
    check: bool,
}

pub fn run(args: SchemaArgs) -> anyhow::Result<u8> {
    if args.check {
        let drifted = crate::schema::drifted(&args.out);
        if drifted.is_empty() {
            outln!("schemas in {} are up to date", args.out.display())?;
            return Ok(0);
        }
        for name in drifted {
            eprintln!("out of date: {}", args.out.join(name).display());
        }
        eprintln!(
            "run `vigil schema --out {}` to regenerate",
            args.out.display()
        );
        return Ok(super::EXIT_ERROR);
    }
    for name in crate::schema::write_all(&args.out)? {
        outln!("wrote {}", args.out.join(name).display())?;
    }
    Ok(0)
}
