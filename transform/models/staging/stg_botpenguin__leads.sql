{{ botpenguin_stage('leads', 'lead') }}
