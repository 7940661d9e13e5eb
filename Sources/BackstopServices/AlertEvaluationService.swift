import Alerting
import BackstopState
import Logging
import ServiceLifecycle

/// The alert evaluator as a service: it runs the rules on the state store's snapshot at every
/// change of state — a probe round (the health loop's timer is one source of change among
/// others), a finished job, an upload, a drill, a backup another process wrote — so a failed
/// job reaches alerts.json, the webhooks and Alertmanager within a second, not at the next
/// health round. Evaluations run one at a time, in this service's task.
public struct AlertEvaluationService: Service {
    let store: StateStore
    let pipeline: AlertPipeline

    public init(store: StateStore, pipeline: AlertPipeline) {
        self.store = store
        self.pipeline = pipeline
    }

    public func run() async throws {
        let changes = await store.changes()
        await cancelWhenGracefulShutdown {
            // A change published before this subscription (the first probe round) is not
            // replayed: evaluate what is there now.
            await evaluate()
            for await _ in changes {
                await evaluate()
            }
        }
        // The deliveries belong to this service: queued ones get a few seconds to go out,
        // within the group's graceful shutdown.
        await pipeline.shutdown(grace: .seconds(5))
    }

    private func evaluate() async {
        guard let snapshot = await store.snapshot() else { return }
        await pipeline.evaluate(snapshot)
    }
}
