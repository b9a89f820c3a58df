import re

from cron_descriptor import ExpressionDescriptor, Options
from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django_celery_beat.admin import PeriodicTaskAdmin as BasePeriodicTaskAdmin
from django_celery_beat.admin import PeriodicTaskForm, TaskSelectWidget
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from unfold.admin import ModelAdmin, TabularInline
from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextInputWidget

from .models import AlertState, Heartbeat


@admin.register(AlertState)
class AlertStateAdmin(ModelAdmin):
    list_display = ["key", "active", "message", "changed_at", "evaluated_at"]
    list_filter = ["active"]
    search_fields = ["key", "message"]
    readonly_fields = ["key", "active", "message", "details", "changed_at", "evaluated_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Heartbeat)
class HeartbeatAdmin(ModelAdmin):
    list_display = ["name", "at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# django-celery-beat registers plain Django admins; re-register them on unfold's ModelAdmin
# (unfold's documented integration) so the schedule is edited in the same console. Its texts are
# translated in locale/pt_BR (beat ships no pt-BR); what it hard-codes in English (the "Task
# Name" label, the cron description) is replaced here.
for model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


class UnfoldTaskSelectWidget(UnfoldAdminSelectWidget, TaskSelectWidget):
    pass


class UnfoldPeriodicTaskForm(PeriodicTaskForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task"].widget = UnfoldAdminTextInputWidget()
        self.fields["task"].label = _("Task name")
        self.fields["regtask"].widget = UnfoldTaskSelectWidget()


class TasksUsingThisScheduleInline(TabularInline):
    model = PeriodicTask
    fields = ["name", "task_name", "enabled"]
    readonly_fields = fields
    can_delete = False
    extra = 0
    show_change_link = True
    verbose_name = verbose_name_plural = _("Periodic Tasks Using This Schedule")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("Task name"))
    def task_name(self, obj: PeriodicTask) -> str:
        return obj.task


class ScheduleAdmin(ModelAdmin):
    inlines = [TasksUsingThisScheduleInline]


class TaskNameFilter(admin.AllValuesFieldListFilter):
    """Beat's `task` field is labelled "Task Name" without translation."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = _("Task name")


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BasePeriodicTaskAdmin, ModelAdmin):
    form = UnfoldPeriodicTaskForm
    list_filter = ["enabled", "one_off", ("task", TaskNameFilter), "start_time", "last_run_at"]

    def get_fieldsets(self, request, obj=None):
        """Read-only (support): the task by our label, as beat's own reads "Task Name"."""
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        return [(title, {**options, "fields": [
            "task_name" if f == "task" else f for f in options["fields"]]})
            for title, options in fieldsets]

    @admin.display(description=_("Task name"))
    def task_name(self, obj: PeriodicTask) -> str:
        return obj.task


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(ScheduleAdmin):
    pass


# cron_descriptor (beat's dependency) knows Portuguese (pt_PT) but takes weekday and month names
# from the process locale.
_CRON_NAMES = {
    "Monday": "segunda-feira", "Tuesday": "terça-feira", "Wednesday": "quarta-feira",
    "Thursday": "quinta-feira", "Friday": "sexta-feira", "Saturday": "sábado",
    "Sunday": "domingo", "January": "janeiro", "February": "fevereiro", "March": "março",
    "April": "abril", "May": "maio", "June": "junho", "July": "julho", "August": "agosto",
    "September": "setembro", "October": "outubro", "November": "novembro",
    "December": "dezembro",
}


def cron_description(schedule: CrontabSchedule) -> str:
    """ "40 */6 * * *" → "Aos 40 minutos da hora, a cada 6 horas (America/Sao_Paulo)"."""
    expression = " ".join([schedule.minute, schedule.hour, schedule.day_of_month,
                           schedule.month_of_year, schedule.day_of_week])
    options = Options()
    options.locale_code = "pt_PT"
    options.use_24hour_time_format = True
    try:
        text = ExpressionDescriptor(expression, options).get_description()
    except Exception:  # an expression cron_descriptor cannot read: show it as written
        return f"{expression} ({schedule.timezone})"
    for english, portuguese in _CRON_NAMES.items():
        text = re.sub(rf"\b{english}\b", portuguese, text)
    return f"{text} ({schedule.timezone})"


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ScheduleAdmin):
    list_display = ["__str__", "description"]
    fields = ["description", "minute", "hour", "day_of_month", "month_of_year", "day_of_week",
              "timezone"]
    readonly_fields = ["description"]

    @admin.display(description=_("when"))
    def description(self, obj: CrontabSchedule) -> str:
        return cron_description(obj)


@admin.register(SolarSchedule)
class SolarScheduleAdmin(ScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(ScheduleAdmin):
    list_display = ["clocked_time"]
    fields = ["clocked_time"]
