"""Celery task signals: each task's log lines carry its task id as the request id."""

from celery.signals import task_postrun, task_prerun

from config.logging import org_id_var, request_id_var


@task_prerun.connect
def _task_context(task_id: str | None = None, **kwargs) -> None:
    request_id_var.set(f"task-{task_id}" if task_id else "-")
    org_id_var.set("")


@task_postrun.connect
def _task_context_clear(**kwargs) -> None:
    request_id_var.set("-")
    org_id_var.set("")
