pub use fa_macros::flash_attention;
pub use fa_spec::KernelSpec;
