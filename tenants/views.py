from django.http import HttpResponse
from django.shortcuts import render


def home(request) -> HttpResponse:
    return render(request, "home.html", {"org": request.tenant})
