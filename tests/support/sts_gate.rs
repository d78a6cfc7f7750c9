//! An HTTP front for moto's STS that refuses AssumeRole of one account's roles with
//! AccessDenied, as AWS does when a role's trust policy does not name the caller (moto assumes
//! any role). Everything else is passed to moto unchanged.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub struct StsGate {
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl StsGate {
    pub async fn start(moto_endpoint: &str, refused_account: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = moto_endpoint.trim_start_matches("http://").to_owned();
        // RoleArn=arn:aws:iam::ACCOUNT:..., form-encoded.
        let refused = format!("arn%3Aaws%3Aiam%3A%3A{refused_account}%3A");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, refused) = (upstream.clone(), refused.clone());
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &refused).await;
                });
            }
        });
        Self { endpoint, task }
    }
}

impl Drop for StsGate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: requests one after another (keep-alive).
async fn serve(client: TcpStream, upstream: &str, refused: &str) -> std::io::Result<()> {
    let (read, mut write) = client.into_split();
    let mut client = BufReader::new(read);
    while let Some(request) = read_message(&mut client).await? {
        let text = String::from_utf8_lossy(&request);
        let answer = if text.contains("Action=AssumeRole") && text.contains(refused) {
            let body = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                        <Code>AccessDenied</Code><Message>User is not authorized to perform: sts:AssumeRole</Message>\
                        </Error><RequestId>gate</RequestId></ErrorResponse>";
            format!("HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                .into_bytes()
        } else {
            let mut moto = TcpStream::connect(upstream).await?;
            moto.write_all(&request).await?;
            let mut moto = BufReader::new(moto);
            read_message(&mut moto).await?.unwrap_or_default()
        };
        write.write_all(&answer).await?;
    }
    Ok(())
}

/// One HTTP/1.1 message (head and a Content-Length body), or `None` at the end of the stream.
async fn read_message<R: tokio::io::AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_lowercase();
    let length: usize =
        text.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    head.extend_from_slice(&body);
    Ok(Some(head))
}
