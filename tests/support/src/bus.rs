//! The local EventBridge that `scripts/with-moto` starts, with a way to see what reaches it: a
//! bus of a test's own, a rule on it matching one source, and an SQS queue as the rule's target
//! (moto delivers to the queue inside the `PutEvents` call, so what a send delivered is in the
//! queue when the call returns).

use aws_sdk_eventbridge::config::Builder;
use serde_json::Value;

/// The local EventBridge's endpoint (`AWS_ENDPOINT_URL_EVENTBRIDGE`).
pub fn eventbridge_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL_EVENTBRIDGE").expect(
        "AWS_ENDPOINT_URL_EVENTBRIDGE names a local EventBridge (run under scripts/with-moto, as make test does)",
    )
}

/// An EventBridge client configured as the functions' ([`shared::secrets::sdk_config`]), reaching
/// `endpoint` (the local EventBridge, or a proxy in front of it).
pub async fn eventbridge_client(endpoint: &str) -> aws_sdk_eventbridge::Client {
    let config = shared::secrets::sdk_config().await;
    aws_sdk_eventbridge::Client::from_conf(Builder::from(&config).endpoint_url(endpoint).build())
}

/// A bus, a rule and a queue of one test's own.
pub struct LocalBus {
    /// The bus's name (`EVENT_BUS_NAME`).
    pub name: String,
    queue_url: String,
    sqs: aws_sdk_sqs::Client,
}

impl LocalBus {
    /// Creates a bus named after nothing else, a rule on it for the events of `source`, and an
    /// SQS queue that receives them.
    pub async fn create(source: &str) -> Self {
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        let config = aws_config::load_from_env().await;
        let events = aws_sdk_eventbridge::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        eventbridge_endpoint();
        events.create_event_bus().name(&name).send().await.expect("creating the bus");
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .expect("creating the queue")
            .queue_url()
            .expect("the queue's URL")
            .to_owned();
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("the queue's attributes");
        let queue_arn = attributes
            .attributes()
            .and_then(|attributes| attributes.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .expect("the queue's ARN")
            .clone();
        let pattern = serde_json::json!({ "source": [source] }).to_string();
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&name)
            .event_pattern(pattern)
            .send()
            .await
            .expect("creating the rule");
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(queue_arn)
            .build()
            .expect("a target");
        let put = events
            .put_targets()
            .rule(&name)
            .event_bus_name(&name)
            .targets(target)
            .send()
            .await
            .expect("targeting the queue");
        assert_eq!(put.failed_entry_count(), 0, "{put:?}");
        Self { name, queue_url, sqs }
    }

    /// Every event delivered so far and not yet received, as EventBridge wrote it
    /// (`{"id","source","detail-type","time","detail",...}`), in the queue's order. Receives
    /// until the queue answers empty: with nothing in flight, that is all of them.
    pub async fn received(&self) -> Vec<Value> {
        let mut received = Vec::new();
        loop {
            let answer = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receiving from the queue");
            let messages = answer.messages();
            if messages.is_empty() {
                return received;
            }
            for message in messages {
                let body = message.body().expect("a message body");
                received.push(serde_json::from_str(body).expect("an event as JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().expect("a receipt handle"))
                    .send()
                    .await
                    .expect("deleting the message");
            }
        }
    }
}
