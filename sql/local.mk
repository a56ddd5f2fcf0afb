# Migrations, applied in file-name order by `smartpayctl migrate`.
