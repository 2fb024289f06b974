//! Listing the shells left on a server.

use super::driver::{RandomIds, http_client, send_plain, session_config};
use super::{ConnectOptions, Error};
use crate::enumerate::{ShellLister, ShellListing};

#[cfg(doc)]
use super::RunspacePool;

/// Lists the user's shells of the endpoint's configuration on the server, with their
/// commands (WS-Enumeration, following Pulls): how to find pools disconnected earlier, by
/// this process or another, to take them over with [`RunspacePool::connect_disconnected`].
pub async fn list_shells(options: &ConnectOptions) -> Result<Vec<ShellListing>, Error> {
    let mut http = http_client(options)?;
    let config = session_config(options);
    let mut lister = ShellLister::new(&config, Box::new(RandomIds));
    while let Some(req) = lister.poll_request() {
        let resp = send_plain(
            &mut http,
            options.observer.clone(),
            options.endpoint.url.clone(),
            &req,
        )
        .await?;
        lister.handle_response(resp.status, &resp.body)?;
    }
    Ok(lister.finish())
}
