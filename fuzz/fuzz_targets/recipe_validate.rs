//! Any recipe and shape fields: `Recipe::validate` and `Recipe::memory` never panic and
//! agree with independent references; valid recipes round-trip through a bundle. See
//! `sgmrl_fuzz::check_recipe`.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: sgmrl_fuzz::RecipeInput| sgmrl_fuzz::check_recipe(&input));
