use proc_macro::TokenStream;
#[proc_macro_attribute]
pub fn flash_attention(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
