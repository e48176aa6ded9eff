from django.urls import path

from alerts import pages

urlpatterns = [
    path("alerts/", pages.alerts_page, name="alerts"),
    path("alerts/channels/", pages.channels_page, name="alert_channels"),
    path("alerts/channels/<int:channel_id>/test/", pages.channel_test_view, name="alert_test"),
    path(
        "alerts/channels/<int:channel_id>/delete/",
        pages.channel_delete_view,
        name="alert_channel_delete",
    ),
    path("orgs/<slug:slug>/alerts/", pages.org_alerts_page, name="org_alerts"),
    path("orgs/<slug:slug>/alerts/channels/", pages.org_channels_page, name="org_alert_channels"),
    path(
        "orgs/<slug:slug>/alerts/channels/<int:channel_id>/test/",
        pages.org_channel_test_view,
        name="org_alert_test",
    ),
    path(
        "orgs/<slug:slug>/alerts/channels/<int:channel_id>/delete/",
        pages.org_channel_delete_view,
        name="org_alert_channel_delete",
    ),
]
