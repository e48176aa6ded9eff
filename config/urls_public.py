"""URLs served on the platform host, where no organisation is selected."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from inventory.openapi import openapi_json
from operations.views import health
from tenants.views import home

urlpatterns = [
    path("health", health, name="health"),
    path("api/openapi.json", openapi_json),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", home, name="home"),
]
