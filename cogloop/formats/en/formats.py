"""The product's one date and time format, also where Django formats by locale (the admin):
ISO dates and 24-hour times, as the templates write them with "Y-m-d H:i"."""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
