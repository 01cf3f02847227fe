import os
import re

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .models import Job, Note

MEDIA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def health(request):
    release = os.environ.get("RAMPART_RELEASE", "-")
    return HttpResponse(f"ok, release {release}\n", content_type="text/plain")


def index(request):
    return HttpResponse(f"{Note.objects.count()} notes\n", content_type="text/plain")


@csrf_exempt
def notes(request):
    if request.method == "POST":
        Note.objects.create(text=request.body.decode("utf-8", "replace"))
    return HttpResponse(f"{Note.objects.count()} notes\n", content_type="text/plain")


@csrf_exempt
def jobs(request):
    if request.method == "POST":
        job = Job.objects.create(payload=request.body.decode("utf-8", "replace"))
        return JsonResponse({"id": job.id})
    return JsonResponse(
        {"jobs": [{"id": j.id, "done": j.done, "result": j.result} for j in Job.objects.order_by("id")]}
    )


@csrf_exempt
def media(request, name):
    if not MEDIA_NAME.match(name):
        raise Http404("no such name")
    if request.method == "PUT":
        if default_storage.exists(name):
            default_storage.delete(name)
        default_storage.save(name, ContentFile(request.body))
        return HttpResponse(f"stored {len(request.body)} bytes\n", content_type="text/plain")
    if not default_storage.exists(name):
        raise Http404("no such file")
    return FileResponse(default_storage.open(name, "rb"))
