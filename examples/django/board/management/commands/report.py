"""A scheduled job: notes how many notes there are, or fails on request."""
from django.core.management.base import BaseCommand, CommandError

from board.models import Note


class Command(BaseCommand):
    help = "Write a note counting the notes."

    def add_arguments(self, parser):
        parser.add_argument("--fail", action="store_true", help="fail, for testing alerts")

    def handle(self, *args, fail=False, **options):
        if fail:
            raise CommandError("report failed as asked")
        count = Note.objects.count()
        Note.objects.create(text=f"report: {count} notes")
        self.stdout.write(f"report: {count} notes")
