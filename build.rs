//! Gives librcache.so its soname, `librcache.so.<RCACHE_ABI_VERSION>`: a
//! program linked against one ABI never loads a library of another, which the
//! bindings check by hand with `rcache_abi_version()`. The number is read from
//! src/ffi/mod.rs, so the constant stays the one source.

use std::fs;

fn main() {
    const SOURCE: &str = "src/ffi/mod.rs";
    println!("cargo:rerun-if-changed={SOURCE}");
    let text = fs::read_to_string(SOURCE).expect("read src/ffi/mod.rs");
    let abi = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("pub const RCACHE_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|number| number.trim().parse::<u32>().ok())
        .expect("src/ffi/mod.rs defines `pub const RCACHE_ABI_VERSION: u32 = N;`");
    let soname = format!("librcache.so.{abi}");
    // ELF platforms; macOS names libraries with -install_name instead.
    let unix = std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|family| family.split(',').any(|f| f == "unix"));
    if unix && std::env::var("CARGO_CFG_TARGET_VENDOR").as_deref() != Ok("apple") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    println!("cargo:rustc-env=RCACHE_SONAME={soname}");
}
