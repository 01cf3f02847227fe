"""The worker process: takes queued jobs from the database, one at a time,
without two workers ever taking the same job."""
import time

from django.core.management.base import BaseCommand
from django.db import transaction

from board.models import Job


class Command(BaseCommand):
    help = "Process queued jobs until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="process what is queued, then exit")

    def handle(self, *args, once=False, **options):
        self.stdout.write("worker: waiting for jobs")
        while True:
            with transaction.atomic():
                job = Job.objects.select_for_update(skip_locked=True).filter(done=False).first()
                if job is not None:
                    job.result = job.payload.upper()
                    job.done = True
                    job.save()
                    self.stdout.write(f"worker: job {job.id} done")
            if job is None:
                if once:
                    return
                time.sleep(0.5)
