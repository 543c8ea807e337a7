// `sqlx::migrate!` embeds migrations/ at compile time, but Cargo cannot see that a proc macro
// read those files: without this, editing a migration would not rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
