"""Operations: the SNS alarm topic, an alarm for each thing that can go wrong, and one dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk_app.functions import EncoreFunction
from encore import impressions
from encore import observability as obs
from encore.config import EncoreConfig

FIVE_MINUTES = Duration.minutes(5)
SURFACES = ("home", "next", "similar")


class MonitoringConstruct(Construct):
    def __init__(self, scope: Construct, id: str, *, config: EncoreConfig, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.config = config
        self.topic = sns.Topic(self, "Alarms", display_name="Encore alarms", master_key=key, enforce_ssl=True)
        if config.deploy.alarms.email:
            self.topic.add_subscription(subs.EmailSubscription(config.deploy.alarms.email))
        self.alarms: list[cw.Alarm] = []
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{config.name_prefix}-service")

    def _alarm(self, id: str, metric: cw.IMetric, threshold: float, description: str, **kwargs: object) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=kwargs.pop("evaluation_periods", 1),  # type: ignore[arg-type]
            comparison_operator=kwargs.pop(  # type: ignore[arg-type]
                "comparison", cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            treat_missing_data=kwargs.pop("missing", cw.TreatMissingData.NOT_BREACHING),  # type: ignore[arg-type]
            alarm_description=description,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
        alarm.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm

    def watch(
        self,
        *,
        api: apigw.RestApi,
        functions: Sequence[EncoreFunction],
        stream: firehose.DeliveryStream,
        jobs: dict[str, glue.CfnJob],
        machines: Sequence[sfn.StateMachine],
    ) -> None:
        a = self.config.deploy.alarms
        # API: 5XX rate and p99 latency.
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        rate = cw.MathExpression(
            expression="IF(requests > 0, errors / requests, 0)",
            using_metrics={"errors": errors, "requests": requests},
            period=FIVE_MINUTES,
            label="5XX rate",
        )
        self._alarm("Api5xxRate", rate, a.api_5xx_rate, f"API answers 5XX to {a.api_5xx_rate:.1%} or more of requests")
        latency = api.metric_latency(period=FIVE_MINUTES, statistic="p99")
        self._alarm(
            "ApiP99Latency",
            latency,
            a.api_p99_latency_ms,
            f"API p99 latency at or above {a.api_p99_latency_ms} ms",
            evaluation_periods=3,
        )
        # Each function: errors and throttles.
        for fn in functions:
            name = fn.node.id
            self._alarm(
                f"{name}Errors",
                fn.function.metric_errors(period=FIVE_MINUTES),
                a.function_errors,
                f"{name} function errors in 5 minutes",
            )
            self._alarm(
                f"{name}Throttles", fn.function.metric_throttles(period=FIVE_MINUTES), 1, f"{name} function throttled"
            )
        # Firehose: freshness of delivery to S3 and failed deliveries.
        freshness = stream.metric("DeliveryToS3.DataFreshness", period=FIVE_MINUTES, statistic="Maximum")
        self._alarm(
            "FirehoseFreshness",
            freshness,
            a.firehose_freshness_s,
            f"events older than {a.firehose_freshness_s} s not yet delivered to S3",
        )
        delivered = stream.metric("DeliveryToS3.Success", period=FIVE_MINUTES, statistic="Average")
        self._alarm(
            "FirehoseDeliveryFailures",
            delivered,
            1,
            "Firehose failed to deliver to S3",
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        )
        # Glue: failed tasks per job (metric), and every failed or timed-out run straight to the topic (event).
        for step, job in jobs.items():
            failed = cw.Metric(
                namespace="Glue",
                metric_name="glue.driver.aggregate.numFailedTasks",
                dimensions_map={"JobName": job.ref, "JobRunId": "ALL", "Type": "count"},
                period=FIVE_MINUTES,
                statistic="Sum",
            )
            self._alarm(f"Glue{step.title().replace('_', '')}Failures", failed, 1, f"Glue job {step}: failed tasks")
        events.Rule(
            self,
            "GlueJobFailed",
            description="a Glue job of Encore failed or timed out",
            event_pattern=events.EventPattern(
                source=["aws.glue"],
                detail_type=["Glue Job State Change"],
                detail={"jobName": [j.ref for j in jobs.values()], "state": ["FAILED", "TIMEOUT", "ERROR"]},
            ),
            targets=[events_targets.SnsTopic(self.topic)],
        )
        # Pipelines.
        for machine in machines:
            name = machine.node.scope.node.id if machine.node.scope else "Pipeline"
            self._alarm(
                f"{name}PipelineFailed", machine.metric_failed(period=FIVE_MINUTES), 1, f"{name} pipeline failed"
            )
            self._alarm(
                f"{name}PipelineTimedOut",
                machine.metric_timed_out(period=FIVE_MINUTES),
                1,
                f"{name} pipeline timed out",
            )
        # Endpoint: errors and model latency (the endpoint is named in configuration; see model.py).
        endpoint = {"EndpointName": self.config.resources.endpoint_name, "VariantName": "AllTraffic"}
        endpoint_5xx = cw.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map=endpoint,
            period=FIVE_MINUTES,
            statistic="Sum",
        )
        self._alarm("Endpoint5xx", endpoint_5xx, a.endpoint_5xx, "SageMaker endpoint 5XX errors")
        model_latency = cw.Metric(
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions_map=endpoint,
            period=FIVE_MINUTES,
            statistic="p99",
        )
        # ModelLatency is reported in microseconds.
        self._alarm(
            "ModelLatencyP99",
            model_latency,
            a.model_latency_p99_ms * 1000,
            f"model p99 latency at or above {a.model_latency_p99_ms} ms",
            evaluation_periods=3,
        )
        self._build_dashboard(api, functions, stream, machines, endpoint_5xx, model_latency, rate, latency)

    def _listener_metric(self, name: str, surface: str) -> cw.Metric:
        """A daily figure of the attribute_plays job (``encore.impressions``)."""
        return cw.Metric(
            namespace=obs.NAMESPACE,
            metric_name=name,
            dimensions_map={impressions.SURFACE_DIMENSION: surface},
            period=Duration.days(1),
            statistic="Average",
            label=f"{surface} {name}",
        )

    def _watch_listeners(self) -> list[cw.IWidget]:
        """What listeners did with the recommendations: an alarm when home's play-through rate falls below what
        its own history predicts (a model deploy that listeners like less), and the daily figures."""
        through = {s: self._listener_metric(impressions.PLAY_THROUGH_RATE, s) for s in SURFACES}
        drop = cw.AnomalyDetectionAlarm(
            self,
            "HomePlayThroughDrop",
            metric=through["home"],
            std_devs=self.config.deploy.alarms.play_through_std_devs,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_LOWER_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="home's daily play-through rate fell below its expected band (after a model deploy?)",
        )
        drop.add_alarm_action(cw_actions.SnsAction(self.topic))
        drop.add_ok_action(cw_actions.SnsAction(self.topic))
        self.alarms.append(drop)
        return [
            cw.GraphWidget(
                title="Play-through and early-skip rates of recommended tracks, by surface (daily)",
                left=list(through.values()),
                right=[self._listener_metric(impressions.EARLY_SKIP_RATE, s) for s in SURFACES],
                left_y_axis=cw.YAxisProps(min=0, max=1),
                right_y_axis=cw.YAxisProps(min=0, max=1),
                width=12,
            ),
            cw.GraphWidget(
                title="Impressions and the plays they led to, by surface (daily)",
                left=[self._listener_metric(impressions.IMPRESSIONS, s).with_(statistic="Sum") for s in SURFACES],
                right=[self._listener_metric(impressions.ATTRIBUTED_PLAYS, s).with_(statistic="Sum") for s in SURFACES],
                width=12,
            ),
        ]

    def _service_metric(self, name: str, statistic: str, label: str) -> cw.Metric:
        """One of the functions' own metrics, with exactly the dimensions the code emits it with."""
        return cw.Metric(
            namespace=obs.NAMESPACE,
            metric_name=name,
            dimensions_map={obs.SERVICE_DIMENSION: obs.SERVICE},
            period=FIVE_MINUTES,
            statistic=statistic,
            label=label,
        )

    def _watch_answers(self) -> tuple[cw.Metric, cw.Metric, cw.MathExpression]:
        """Alarms on the share of answers that fell back and on the result cache's hit ratio."""
        a = self.config.deploy.alarms
        fallback_rate = self._service_metric(obs.FALLBACK, "Average", "fallback rate")
        hit_ratio = self._service_metric(obs.CACHE_HIT, "Average", "cache hit ratio")
        self._alarm(
            "FallbackRate",
            fallback_rate,
            a.fallback_rate,
            f"{a.fallback_rate:.0%} or more of recommendation answers fell back to trending for 15 minutes",
            evaluation_periods=3,
        )
        self._alarm(
            "CacheHitRatio",
            hit_ratio,
            a.cache_hit_ratio,
            f"the result cache answered under {a.cache_hit_ratio:.0%} of recommendation requests for 15 minutes "
            "(is the cache reachable?)",
            evaluation_periods=3,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        )
        degraded = cw.MathExpression(
            expression=(
                f"SEARCH('{{{obs.NAMESPACE},{obs.CAUSE_DIMENSION},{obs.SERVICE_DIMENSION}}} "
                f"MetricName=\"{obs.DEGRADED}\"', 'Sum', 300)"
            ),
            label="degraded answers by cause",
            period=FIVE_MINUTES,
        )
        return fallback_rate, hit_ratio, degraded

    def _build_dashboard(
        self,
        api: apigw.RestApi,
        functions: Sequence[EncoreFunction],
        stream: firehose.DeliveryStream,
        machines: Sequence[sfn.StateMachine],
        endpoint_5xx: cw.Metric,
        model_latency: cw.Metric,
        rate: cw.MathExpression,
        latency: cw.Metric,
    ) -> None:
        fallback_rate, hit_ratio, degraded = self._watch_answers()
        listeners = self._watch_listeners()
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="API requests", left=[api.metric_count(period=FIVE_MINUTES, statistic="Sum")], width=8
            ),
            cw.GraphWidget(title="API 5XX rate", left=[rate], width=8),
            cw.GraphWidget(
                title="API latency", left=[latency, api.metric_latency(period=FIVE_MINUTES, statistic="p50")], width=8
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Function errors",
                left=[f.function.metric_errors(period=FIVE_MINUTES) for f in functions],
                width=6,
            ),
            cw.GraphWidget(
                title="Function duration p99",
                left=[f.function.metric_duration(period=FIVE_MINUTES, statistic="p99") for f in functions],
                width=6,
            ),
            cw.GraphWidget(
                title="Fallback rate and cache hit ratio",
                left=[fallback_rate, hit_ratio],
                left_y_axis=cw.YAxisProps(min=0, max=1),
                width=6,
            ),
            cw.GraphWidget(title="Degraded answers by cause", left=[degraded], width=6),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Events delivered to S3",
                left=[stream.metric("DeliveryToS3.Records", period=FIVE_MINUTES, statistic="Sum")],
                right=[stream.metric("DeliveryToS3.DataFreshness", period=FIVE_MINUTES, statistic="Maximum")],
                width=8,
            ),
            cw.GraphWidget(
                title="Model latency p99 (us) and endpoint 5XX", left=[model_latency], right=[endpoint_5xx], width=8
            ),
            cw.GraphWidget(
                title="Pipelines",
                left=[m.metric_succeeded(period=Duration.hours(1)) for m in machines],
                right=[m.metric_failed(period=Duration.hours(1)) for m in machines],
                width=8,
            ),
        )
        self.dashboard.add_widgets(*listeners)
