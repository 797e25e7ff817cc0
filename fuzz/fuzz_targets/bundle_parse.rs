//! Any bytes: `Bundle::parse` returns a bundle that re-encodes byte for byte, or a typed
//! error; `declared_len` agrees. See `sgmrl_fuzz::check_bundle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sgmrl_fuzz::check_bundle(data));
