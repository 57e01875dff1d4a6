// `sqlx::migrate!` embeds the migrations when the crate compiles; without this, adding a migration file
// alone does not rebuild the crate, and the tests would migrate without it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
